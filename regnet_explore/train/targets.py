"""Anchor targets: mmdet's MaxIoUAssigner with BboxOverlapsNearest3D, vectorized over anchors and boxes.

Per sample, every anchor of every level (levels concatenated, ``assigner_per_size=False``) is labelled
positive (IoU >= pos_iou), negative (IoU < neg_iou) or ignored (in between), and each ground-truth box also claims
the anchors it overlaps most when that overlap reaches ``min_pos_iou`` (mmdet's low-quality matching, all ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from regnet_explore.detection.boxes import direction_target, encode, nearest_bev_iou


@dataclass(frozen=True)
class AssignerConfig:
    pos_iou: float = 0.6
    neg_iou: float = 0.3
    min_pos_iou: float = 0.3


def assign(anchors: torch.Tensor, gt_boxes: torch.Tensor, cfg: AssignerConfig) -> torch.Tensor:
    """(A,) long: 0 negative, -1 ignored, k > 0 positive for ground-truth box k - 1.

    anchors (A, >=7), gt_boxes (G, >=7).
    """
    num_anchors = anchors.shape[0]
    if gt_boxes.shape[0] == 0:
        return torch.zeros(num_anchors, dtype=torch.long, device=anchors.device)
    overlaps = nearest_bev_iou(gt_boxes, anchors)  # (G, A)
    max_iou, argmax = overlaps.max(dim=0)
    assigned = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    assigned[(max_iou >= 0) & (max_iou < cfg.neg_iou)] = 0
    positive = max_iou >= cfg.pos_iou
    assigned[positive] = argmax[positive] + 1
    # low-quality matches: mmdet loops over boxes in order, so a later box wins a tie -> take the last claimant
    gt_max = overlaps.max(dim=1).values
    claims = (overlaps == gt_max[:, None]) & (gt_max[:, None] >= cfg.min_pos_iou)  # (G, A)
    claimed = claims.any(dim=0)
    g = torch.arange(1, gt_boxes.shape[0] + 1, device=anchors.device)[:, None]
    last_claimant = (claims * g).max(dim=0).values
    assigned[claimed] = last_claimant[claimed]
    return assigned


@dataclass
class Targets:
    """Training targets of a batch, each (B, A, ...) with anchors of all levels concatenated."""

    labels: torch.Tensor  # (B, A) long: class index, num_classes for background
    label_weights: torch.Tensor  # (B, A) float: 1 for positives and negatives, 0 for ignored anchors
    bbox_targets: torch.Tensor  # (B, A, code_size)
    bbox_weights: torch.Tensor  # (B, A) float: 1 for positives
    dir_targets: torch.Tensor  # (B, A) long
    num_pos: int  # loss normaliser: positives over the batch, at least 1 per sample


def build_targets(anchors: torch.Tensor, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                  num_classes: int, cfg: AssignerConfig, dir_offset: float, dir_limit_offset: float) -> Targets:
    """Targets for a batch: anchors (A, code_size) shared by the batch; per sample gt (G_i, code_size) and
    labels (G_i,)."""
    labels, label_w, bbox_t, bbox_w, dir_t, num_pos = [], [], [], [], [], 0
    for boxes, cls in zip(gt_boxes, gt_labels, strict=True):
        assigned = assign(anchors, boxes, cfg)
        pos = assigned > 0
        idx = (assigned - 1).clamp(min=0)
        matched = boxes[idx] if boxes.shape[0] else anchors.new_zeros(anchors.shape)
        lab = torch.full_like(assigned, num_classes)
        if boxes.shape[0]:
            lab[pos] = cls[idx[pos]]
        labels.append(lab)
        label_w.append((assigned >= 0).float())
        encoded = torch.zeros_like(anchors)
        encoded[pos] = encode(anchors[pos], matched[pos])  # only positives carry box targets
        bbox_t.append(encoded)
        bbox_w.append(pos.float())
        dirs = torch.zeros_like(assigned)
        dirs[pos] = direction_target(matched[pos, 6], dir_offset, dir_limit_offset)
        dir_t.append(dirs)
        num_pos += max(int(pos.sum()), 1)
    return Targets(torch.stack(labels), torch.stack(label_w), torch.stack(bbox_t), torch.stack(bbox_w),
                   torch.stack(dir_t), num_pos)
