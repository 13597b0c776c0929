"""PointPillars losses (mmdet3d Anchor3DHead.loss): sigmoid focal, smooth L1 with sin-difference yaw, direction CE.

All three are normalised by the number of positive anchors in the batch (at least 1 per sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from regnet_explore.train.targets import Targets


@dataclass(frozen=True)
class LossConfig:
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 1.0 / 9.0
    code_weights: tuple[float, ...] = (1, 1, 1, 1, 1, 1, 1, 0.2, 0.2)
    cls_weight: float = 1.0
    bbox_weight: float = 1.0
    dir_weight: float = 0.2


def flatten_levels(maps: Sequence[torch.Tensor], per_anchor: int) -> torch.Tensor:
    """Per-level head maps (B, A_l * K, H, W) -> (B, sum_l H*W*A_l, K) in the anchors' order (location-major)."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, per_anchor) for m in maps], dim=1)


def sigmoid_focal_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, alpha: float,
                       gamma: float) -> torch.Tensor:
    """Summed focal loss: logits (N, C), labels (N,) with C meaning background, weights (N,)."""
    target = F.one_hot(labels, logits.shape[1] + 1)[:, :-1].to(logits.dtype)
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * ce * weights[:, None]).sum()


def detection_loss(cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor],
                   dir_preds: Sequence[torch.Tensor], targets: Targets, num_classes: int,
                   cfg: LossConfig, normalizer: float | None = None) -> dict[str, torch.Tensor]:
    """{'loss_cls', 'loss_bbox', 'loss_dir'} from the head's per-level outputs and :func:`build_targets`.

    ``normalizer`` defaults to the batch's positives; distributed training passes the global count divided by
    the number of processes, so that averaged gradients equal those of one process on the whole batch.
    """
    code_size = targets.bbox_targets.shape[-1]
    cls = flatten_levels(cls_scores, num_classes).reshape(-1, num_classes).float()
    reg = flatten_levels(bbox_preds, code_size).reshape(-1, code_size).float()
    dirs = flatten_levels(dir_preds, 2).reshape(-1, 2).float()
    labels, label_w = targets.labels.reshape(-1), targets.label_weights.reshape(-1)
    bbox_t, pos = targets.bbox_targets.reshape(-1, code_size), targets.bbox_weights.reshape(-1) > 0
    norm = float(targets.num_pos if normalizer is None else normalizer)

    loss_cls = sigmoid_focal_loss(cls, labels, label_w, cfg.focal_alpha, cfg.focal_gamma) / norm
    p, t = reg[pos], bbox_t[pos]
    # sin(a - b) = sin(a)cos(b) - cos(a)sin(b): compare the two products instead of the raw yaw
    p = torch.cat([p[:, :6], (torch.sin(p[:, 6]) * torch.cos(t[:, 6]))[:, None], p[:, 7:]], dim=1)
    t = torch.cat([t[:, :6], (torch.cos(reg[pos][:, 6]) * torch.sin(t[:, 6]))[:, None], t[:, 7:]], dim=1)
    weights = reg.new_tensor(cfg.code_weights[:code_size])
    loss_bbox = (F.smooth_l1_loss(p, t, beta=cfg.smooth_l1_beta, reduction="none") * weights).sum() / norm
    loss_dir = F.cross_entropy(dirs[pos], targets.dir_targets.reshape(-1)[pos], reduction="sum") / norm
    return {"loss_cls": cfg.cls_weight * loss_cls, "loss_bbox": cfg.bbox_weight * loss_bbox,
            "loss_dir": cfg.dir_weight * loss_dir}
