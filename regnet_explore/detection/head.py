"""PointPillars anchor head (mmdet3d ``Anchor3DHead``): three 1x1 convs per level and test-time decoding.

Parameters ``conv_cls`` (A * num_classes), ``conv_reg`` (A * code_size) and ``conv_dir_cls`` (A * 2) are shared
by all levels; channel ``a * k + c`` belongs to anchor ``a = size_index * n_rot + rot_index`` of a location.
``decode`` follows mmdet3d's ``get_bboxes``: per level sigmoid scores, the ``nms_pre`` anchors with the best
class score, delta decoding; then, over all levels, per-class rotated NMS, the best ``max_num`` boxes and the
direction-bin correction of yaw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.boxes import decode, decode_direction, legacy_to_current
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.nms import multiclass_nms
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.complexity import Complexity, constructor_args

DIR_OFFSET = -math.pi / 4  # mmdet3d >= 1.0 configs (-0.7854)
LEGACY_DIR_OFFSET = 0.7854  # mmdet3d < 1.0 configs, under which the released checkpoints were trained


@dataclass(frozen=True)
class HeadTestConfig:
    """mmdet3d ``test_cfg.pts`` of the PointPillars configs (nms_pre is per level)."""

    nms_pre: int = 1000
    nms_thr: float = 0.2
    score_thr: float = 0.05
    max_num: int = 500
    use_rotate_nms: bool = True


class AnchorHead(nn.Module):
    """Anchor-based 3D box head over one or more BEV feature maps.

    ``anchors`` are given in the current convention (l, w, h). ``legacy=True`` decodes weights trained under
    mmdet3d < 1.0: anchors are built with (w, l, h) sizes, direction offsets default to the legacy ones
    (0.7854, 0), and the decoded boxes are converted to the current convention. ``dir_offset`` /
    ``dir_limit_offset`` of None take the convention's default (-pi/4 or 0.7854, and 0). The convs read
    ``feat_channels`` input channels (mmdet3d's ``in_channels`` equals it in every config and is not read).
    """

    def __init__(self, num_classes: int, feat_channels: int, anchors: AnchorConfig, code_size: int,
                 dir_offset: float | None = None, dir_limit_offset: float | None = None, legacy: bool = False):
        super().__init__()
        if code_size != anchors.box_dim:
            raise RegNetExploreError(
                f"code_size {code_size} does not match the anchors' {anchors.box_dim} values "
                f"(7 + {len(anchors.custom_values)} custom values)")
        self.num_classes, self.code_size = num_classes, code_size
        self.feat_channels = feat_channels
        self.legacy = legacy
        self.anchor_config = anchors
        if legacy:
            swapped = [(s[1], s[0], s[2]) for s in anchors.sizes]
            self.anchor_config = dataclasses.replace(anchors, sizes=swapped)
        self.dir_offset = (LEGACY_DIR_OFFSET if legacy else DIR_OFFSET) if dir_offset is None else dir_offset
        self.dir_limit_offset = 0.0 if dir_limit_offset is None else dir_limit_offset
        self.num_anchors = anchors.num_per_location
        self.conv_cls = nn.Conv2d(feat_channels, self.num_anchors * num_classes, 1)
        self.conv_reg = nn.Conv2d(feat_channels, self.num_anchors * code_size, 1)
        self.conv_dir_cls = nn.Conv2d(feat_channels, self.num_anchors * 2, 1)
        self._anchor_cache: dict[tuple, list[torch.Tensor]] = {}
        self.reset_parameters()

    @staticmethod
    def complexity(cx: Complexity, sizes: Sequence[tuple[int, int]], *args, **kwargs) -> list[tuple[int, int]]:
        """Adds the three 1x1 convs run on every level of ``sizes`` (their shared weights counted once) for the
        constructor's arguments; returns ``sizes``. ``cx``'s spatial size is left unchanged."""
        a = constructor_args(AnchorHead, args, kwargs)
        feat_channels = a["feat_channels"]
        outputs = a["anchors"].num_per_location * (a["num_classes"] + a["code_size"] + 2)
        for level, (h, w) in enumerate(sizes):
            part = Complexity(h, w).conv(feat_channels, outputs, 1, bias=True)
            cx.flops += part.flops
            cx.acts += part.acts
            cx.params += part.params if level == 0 else 0
        return list(sizes)

    def reset_parameters(self) -> None:
        """mmdet3d init: Normal(0, 0.01) weights, zero biases, classification bias for a 0.01 prior."""
        for conv in (self.conv_cls, self.conv_reg, self.conv_dir_cls):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                               list[torch.Tensor]]:
        """Per level (B, A*C, H, W) class logits, (B, A*code_size, H, W) deltas, (B, A*2, H, W) direction logits."""
        return ([self.conv_cls(x) for x in feats], [self.conv_reg(x) for x in feats],
                [self.conv_dir_cls(x) for x in feats])

    def set_anchor_ranges(self, ranges: Sequence[Sequence[float]]) -> None:
        """Move the anchors to another BEV range (same sizes and rotations)."""
        self.anchor_config = dataclasses.replace(self.anchor_config, ranges=tuple(tuple(r) for r in ranges))
        self._anchor_cache.clear()

    def anchors(self, feature_sizes: Sequence[tuple[int, int]], device: torch.device) -> list[torch.Tensor]:
        """Anchors per level for these map sizes, built once per (sizes, device)."""
        key = (tuple(tuple(s) for s in feature_sizes), str(device))
        if key not in self._anchor_cache:
            self._anchor_cache[key] = self.anchor_config.generate(feature_sizes, device)
        return self._anchor_cache[key]

    def _top_candidates(self, cls: torch.Tensor, reg: torch.Tensor, dirs: torch.Tensor, anchors: torch.Tensor,
                        nms_pre: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One level -> (B, k, C) scores, (B, k, code_size) boxes, (B, k) direction bins; k <= nms_pre."""
        batch = cls.shape[0]
        scores = cls.float().permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes).sigmoid()
        deltas = reg.float().permute(0, 2, 3, 1).reshape(batch, -1, self.code_size)
        bins = dirs.permute(0, 2, 3, 1).reshape(batch, -1, 2).argmax(-1)
        anchors = anchors.expand(batch, -1, -1)
        if 0 < nms_pre < scores.shape[1]:
            top = scores.amax(-1).topk(nms_pre, dim=1).indices  # (B, k)
            scores = scores.gather(1, top[..., None].expand(-1, -1, self.num_classes))
            deltas = deltas.gather(1, top[..., None].expand(-1, -1, self.code_size))
            anchors = anchors.gather(1, top[..., None].expand(-1, -1, self.code_size))
            bins = bins.gather(1, top)
        return scores, decode(anchors, deltas), bins

    def decode(self, cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor],
               dir_cls_preds: Sequence[torch.Tensor], cfg: HeadTestConfig,
               class_names: Sequence[str]) -> list[Detections]:
        """Per sample the :class:`Detections` (K <= cfg.max_num boxes, K x code_size) of the outputs of
        :meth:`forward`; labels index ``class_names``. Decoding runs in float32."""
        device = cls_scores[0].device
        batch = cls_scores[0].shape[0]
        with torch.autocast(device.type, enabled=False):
            anchors = self.anchors([tuple(c.shape[-2:]) for c in cls_scores], device)
            levels = [self._top_candidates(c, r, d, a, cfg.nms_pre)
                      for c, r, d, a in zip(cls_scores, bbox_preds, dir_cls_preds, anchors, strict=True)]
            scores = torch.cat([lv[0] for lv in levels], 1).flatten(0, 1)  # (B * K, C)
            boxes = torch.cat([lv[1] for lv in levels], 1).flatten(0, 1)  # (B * K, code_size)
            bins = torch.cat([lv[2] for lv in levels], 1).flatten()
            sample = torch.arange(batch, device=device).repeat_interleave(scores.shape[0] // batch)
            footprints = legacy_to_current(boxes) if self.legacy else boxes
            index, labels, kept_scores = multiclass_nms(footprints, scores, cfg.score_thr, cfg.nms_thr,
                                                        cfg.max_num, cfg.use_rotate_nms, groups=sample)
            kept = boxes[index]
            kept[:, 6] = decode_direction(kept[:, 6], bins[index], self.dir_offset, self.dir_limit_offset)
            if self.legacy:
                kept = legacy_to_current(kept)
            counts = torch.bincount(sample[index], minlength=batch).tolist()
        names = tuple(class_names)
        return [Detections(b, s, lab, names) for b, s, lab in
                zip(kept.split(counts), kept_scores.split(counts), labels.split(counts), strict=True)]
