"""PointPillars: points -> pillars -> BEV image -> backbone -> neck -> anchor head -> boxes.

The module tree and state_dict are mmdet3d's ``MVXFasterRCNN`` points branch (``pts_voxel_encoder``,
``pts_middle_encoder``, ``pts_backbone``, ``pts_neck``, ``pts_bbox_head``): same keys, order and shapes, so
mmdet3d checkpoints load strictly. :meth:`PointPillars.forward` runs the stages top to bottom in data order;
:meth:`PointPillars.predict` adds the head's decoding. :meth:`PointPillars.fuse` turns a loaded model into its
inference form (BatchNorm folded, channels_last on CPU); :meth:`PointPillars.from_config` calls it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from regnet_explore.detection.checkpoint import checkpoint_is_legacy, load_state, read_checkpoint
from regnet_explore.detection.configs import DetectorConfig, detector_complexity, get_config
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.head import AnchorHead
from regnet_explore.detection.pillar_encoder import HardVFE
from regnet_explore.detection.scatter import PointPillarsScatter
from regnet_explore.detection.voxelize import Voxels, voxelize
from regnet_explore.errors import RegNetExploreError

PointsLike = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]
HeadOutputs = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast of ``precision`` on ``device`` (``auto``: fp16 on CUDA, fp32 on CPU; fp32: none); the dense
    part's at inference, and training's mixed precision."""
    dtype = AUTOCAST[precision if precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

def fold_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with every BatchNorm folded into the conv before it (BN -> Identity), in place.

    Pairs are the mmdet/torch layouts used here: attributes ``conv{i}``/``bn{i}`` and ``conv``/``bn``, and
    adjacent (conv, BN) entries of an ``nn.Sequential`` (SECOND blocks, downsample, SECONDFPN deblocks).
    """
    module.eval()
    bn_type = nn.modules.batchnorm._BatchNorm
    for sub in module.modules():
        for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("conv", "bn")):
            conv, bn = getattr(sub, conv_name, None), getattr(sub, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, bn_type):
                setattr(sub, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(sub, bn_name, nn.Identity())
        if isinstance(sub, nn.Sequential):
            for i in range(len(sub) - 1):
                if isinstance(sub[i], nn.Conv2d | nn.ConvTranspose2d) and isinstance(sub[i + 1], bn_type):
                    sub[i] = fuse_conv_bn_eval(sub[i], sub[i + 1], transpose=isinstance(sub[i], nn.ConvTranspose2d))
                    sub[i + 1] = nn.Identity()
    return module


class PointPillars(nn.Module):
    """The detector of one :class:`DetectorConfig`; ``legacy`` selects the pre-1.0 mmdet3d box convention."""

    def __init__(self, cfg: DetectorConfig, legacy: bool = False):
        super().__init__()
        self.cfg, self.legacy = cfg, legacy
        enc = cfg.encoder
        self.pts_voxel_encoder = HardVFE(enc.in_channels, enc.feat_channels, cfg.voxel_size, cfg.point_cloud_range,
                                         enc.norm_eps, enc.norm_momentum)
        self.pts_middle_encoder = PointPillarsScatter(self.pts_voxel_encoder.out_channels, cfg.bev_shape)
        self.pts_backbone = cfg.backbone.build()
        self.pts_neck = cfg.neck.build()
        self.pts_bbox_head = AnchorHead(cfg.num_classes, cfg.neck.head_channels, cfg.anchors, cfg.code_size,
                                        dir_offset=None if legacy else cfg.dir_offset,
                                        dir_limit_offset=cfg.dir_limit_offset, legacy=legacy)
        self.memory_format = torch.contiguous_format
        self.precision: Precision = "auto"  # of the dense part; see set_precision
        self.fused = False

    # --- the data path, in order ----------------------------------------------------------------------------

    def forward(self, clouds: Sequence[torch.Tensor]) -> HeadOutputs:
        """Head outputs for a batch of B clouds (each (N_i, 4): x, y, z, time-lag), one tensor per level.

        Training computes the losses on them; :meth:`predict` decodes them into boxes.
        """
        vox = self.voxelize(clouds)  # voxels (P, max_points, 4), num_points (P,), coors (P, 4) = (b, z, y, x)
        pillars = self.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors)  # (P, 64)
        bev = self.pts_middle_encoder(pillars, vox.coors, len(clouds))  # (B, 64, ny, nx)
        bev = bev.contiguous(memory_format=self.memory_format)
        with autocast(bev.device, self.precision):
            feats = self.pts_backbone(bev)  # per out_index i: (B, C_i, ny / s_i, nx / s_i)
            feats = self.pts_neck(feats)  # FPN: per level (B, 256, h_i, w_i); SECONDFPN: [(B, 384, ny/2, nx/2)]
            cls, reg, dirs = self.pts_bbox_head(feats)  # per level (B, A*C | A*code | A*2, h_i, w_i)
        return [c.float() for c in cls], [r.float() for r in reg], [d.float() for d in dirs]

    def voxelize(self, clouds: Sequence[torch.Tensor]) -> Voxels:
        """Hard voxelization into pillars (the config's training or testing ``max_voxels``)."""
        max_voxels = self.cfg.max_voxels[0 if self.training else 1]
        # the encoder consumes the pillars before the next voxelization: no copy of spconv's buffers needed
        return voxelize(clouds, self.cfg.voxel_size, self.cfg.point_cloud_range, self.cfg.max_points, max_voxels,
                        copy=False)

    @torch.no_grad()
    def predict(self, points: PointsLike, score_thr: float | None = None) -> Detections | list[Detections]:
        """Boxes for one cloud (N, 4: x, y, z, time-lag; numpy or torch) or a list of clouds.

        One cloud gives one :class:`Detections`, a list gives a list. Runs in eval mode on the model's device;
        ``score_thr`` replaces the config's test threshold.
        """
        single, clouds = as_clouds(points, self.cfg.point_dims, self.device)
        if not clouds:
            return []
        was_training = self.training
        self.eval()
        try:
            outs = self(clouds)
        finally:
            self.train(was_training)
        dets = self.decode(outs, score_thr)
        return dets[0] if single else dets

    def decode(self, outs: HeadOutputs, score_thr: float | None = None) -> list[Detections]:
        """Per cloud the boxes of the head outputs (rotated NMS per class); ``score_thr`` replaces the config's."""
        test_cfg = self.cfg.test_cfg if score_thr is None else replace(self.cfg.test_cfg, score_thr=score_thr)
        return self.pts_bbox_head.decode(*outs, test_cfg, self.cfg.class_names)

    def timed_stages(self) -> dict[str, tuple[object, str]]:
        """The stages of the data path for :func:`detection.timing.stage_timer`."""
        return {"voxelize": (self, "voxelize"), "encoder": (self.pts_voxel_encoder, "forward"),
                "scatter": (self.pts_middle_encoder, "forward"), "backbone": (self.pts_backbone, "forward"),
                "neck": (self.pts_neck, "forward"), "head": (self.pts_bbox_head, "forward"),
                "decode": (self.pts_bbox_head, "decode")}

    # --- construction and inference form ----------------------------------------------------------------------

    @classmethod
    def from_config(cls, name_or_config: str | DetectorConfig, checkpoint: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu", legacy: bool | None = None, fuse: bool = True) -> PointPillars:
        """A detector in eval mode on ``device``, with weights from an mmdet3d-layout checkpoint if given, in its
        inference form (:meth:`fuse`) unless ``fuse=False`` (to train it or read its state_dict).

        ``legacy=None`` reads the box convention from the checkpoint's meta (False without a checkpoint).
        """
        cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
        state = meta = None
        if checkpoint is not None:
            ckpt = read_checkpoint(checkpoint)
            state, meta = ckpt.state, ckpt.meta
            if legacy is None:
                legacy = checkpoint_is_legacy(meta, checkpoint)
        model = cls(cfg, legacy=bool(legacy))
        if state is not None:
            load_state(model, state, checkpoint)
        model.to(torch.device(device)).eval()
        return model.fuse() if fuse else model

    def fuse(self) -> PointPillars:
        """The inference form, in place: every BatchNorm of backbone and neck folded into the conv before it (fewer
        memory passes) and, on CPU, the dense part in channels_last. Boxes are unchanged up to float rounding. A
        fused model has no BatchNorm left, so its state_dict lacks the BN keys and it can no longer train: load
        weights first, fuse last."""
        self.eval()
        self.pts_backbone = fold_batchnorm(self.pts_backbone)
        self.pts_neck = fold_batchnorm(self.pts_neck)
        self.fused = True
        if self.device.type == "cpu":
            self.set_channels_last(True)
        return self

    def train(self, mode: bool = True) -> PointPillars:
        if mode and self.fused:
            raise RegNetExploreError(f"{self.cfg.name}: a fused model (BatchNorm folded) cannot train; build it with "
                                     f"PointPillars.from_config(..., fuse=False)")
        return super().train(mode)

    def set_channels_last(self, enabled: bool = True) -> PointPillars:
        """Dense part (backbone, neck, head) in channels_last memory format (faster on CPU)."""
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        for module in (self.pts_backbone, self.pts_neck, self.pts_bbox_head):
            module.to(memory_format=self.memory_format)
        return self

    def set_geometry(self, cfg: DetectorConfig) -> PointPillars:
        """Run the same network on another BEV range or grid (a training window, or back to the full range).

        Only the parameter-free geometry changes: voxelization range, pillar centres, canvas size, anchors.
        """
        if (cfg.voxel_size, cfg.anchors.sizes, cfg.anchors.rotations) != (
                self.cfg.voxel_size, self.cfg.anchors.sizes, self.cfg.anchors.rotations):
            raise RegNetExploreError(f"{cfg.name}: set_geometry changes the range only; voxel size, anchor sizes "
                                     f"and rotations must equal those of {self.cfg.name}")
        self.cfg = cfg
        self.pts_voxel_encoder.set_range(cfg.point_cloud_range)
        self.pts_middle_encoder.ny, self.pts_middle_encoder.nx = cfg.bev_shape
        self.pts_bbox_head.set_anchor_ranges(cfg.anchors.ranges)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_precision(self, precision: Precision) -> PointPillars:
        """The dense part's arithmetic: ``auto`` (fp16 autocast on CUDA, fp32 on CPU: the default), ``fp32``,
        ``bf16`` (autocast; oneDNN's AVX512-BF16 / AMX kernels on CPU) or ``fp16`` (autocast, CUDA). Voxelization,
        the pillar encoder and decoding stay float32. int8 runs on the ONNX backend (:mod:`regnet_explore.deploy`)."""
        if precision not in PRECISIONS:
            hint = "; int8 runs on the ONNX backend (--backend onnx)" if precision == "int8" else ""
            raise RegNetExploreError(f"precision {precision!r}: the torch backend runs {', '.join(PRECISIONS)}{hint}")
        self.precision = precision
        return self

    def complexity(self, height: int | None = None, width: int | None = None) -> dict[str, int]:
        """FLOPs (multiply-adds, pycls rules) and params of the dense part on the (ny, nx) BEV image, in total and
        per stage (``backbone_flops``, ``neck_flops``, ``head_flops``); see :func:`detector_complexity`."""
        return detector_complexity(self.cfg, height, width)


def as_clouds(points: PointsLike, dims: int, device: torch.device) -> tuple[bool, list[torch.Tensor]]:
    """(whether ``points`` is one cloud, the clouds as float32 (N, dims) tensors on ``device``)."""
    single = isinstance(points, np.ndarray | torch.Tensor)
    return single, [as_cloud(p, dims, device, i) for i, p in enumerate([points] if single else points)]


def as_cloud(points: np.ndarray | torch.Tensor, dims: int, device: torch.device, index: int = 0) -> torch.Tensor:
    """A user's cloud as a float32 (N, dims) tensor on ``device``; wrong shape or dtype is a clear error."""
    if isinstance(points, np.ndarray):
        if not np.issubdtype(points.dtype, np.floating):
            raise RegNetExploreError(f"point cloud {index}: dtype {points.dtype} is not floating point")
        points = torch.from_numpy(np.ascontiguousarray(points))
    elif not isinstance(points, torch.Tensor):
        raise RegNetExploreError(f"point cloud {index}: expected a numpy array or torch tensor, got {type(points)}")
    if not points.is_floating_point():
        raise RegNetExploreError(f"point cloud {index}: dtype {points.dtype} is not floating point")
    if points.dim() != 2 or points.shape[1] != dims:
        raise RegNetExploreError(
            f"point cloud {index}: shape {tuple(points.shape)}, expected (N, {dims}) = x, y, z, time-lag")
    return points.to(device=device, dtype=torch.float32)
