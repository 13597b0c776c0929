"""PointPillars: points -> pillars -> BEV image -> backbone -> neck -> anchor head -> boxes.

The module tree and state_dict are mmdet3d's ``MVXFasterRCNN`` points branch (``pts_voxel_encoder``,
``pts_middle_encoder``, ``pts_backbone``, ``pts_neck``, ``pts_bbox_head``): same keys, order and shapes, so
mmdet3d checkpoints load strictly. The stages run one by one through :meth:`PointPillars.run`, which the
forward pass, :meth:`PointPillars.predict` and the benchmark's per-stage timing all share.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from regnet_explore.detection.configs import DetectorConfig, get_config
from regnet_explore.detection.head import AnchorHead
from regnet_explore.detection.necks import FPN, SECONDFPN
from regnet_explore.detection.pillar_encoder import HardVFE
from regnet_explore.detection.scatter import PointPillarsScatter
from regnet_explore.detection.second import SECOND
from regnet_explore.detection.voxelize import Voxels, voxelize
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, regnet_complexity
from regnet_explore.regnet.complexity import Complexity

STAGES = ("voxelize", "encode", "backbone", "neck", "head", "decode")
PointsLike = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]


@dataclass
class Detections:
    """Boxes of one cloud in the LiDAR frame: boxes (K, 7 | 9) = x, y, z_bottom, l, w, h, yaw[, vx, vy]."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready lists."""
        return {"boxes": self.boxes.detach().cpu().tolist(), "scores": self.scores.detach().cpu().tolist(),
                "labels": self.labels.detach().cpu().tolist(),
                "names": [self.class_names[i] for i in self.labels.detach().cpu().tolist()]}


def build_backbone(cfg: DetectorConfig) -> nn.Module:
    b = cfg.backbone
    if b.type == "second":
        return SECOND(b.in_channels, b.second_channels, b.layer_nums, b.layer_strides, b.norm_eps, b.norm_momentum)
    return RegNet(b.arch, stem_channels=b.stem_channels, stem=False, strides=b.strides, out_indices=b.out_indices,
                  norm=b.norm, norm_eps=b.norm_eps, norm_momentum=b.norm_momentum, norm_eval=b.norm_eval)


def build_neck(cfg: DetectorConfig) -> nn.Module:
    n = cfg.neck
    if n.type == "fpn":
        return FPN(n.in_channels, n.out_channels, n.norm_eps, n.norm_momentum)
    return SECONDFPN(n.in_channels, n.secfpn_channels, n.upsample_strides, n.norm_eps, n.norm_momentum)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An inference copy of ``module`` with every BatchNorm folded into the conv before it (BN -> Identity).

    Pairs are the mmdet/torch layouts used here: attributes ``conv{i}``/``bn{i}`` and ``conv``/``bn``, and
    adjacent (conv, BN) entries of an ``nn.Sequential`` (SECOND blocks, downsample, SECONDFPN deblocks).
    """
    module = copy.deepcopy(module).eval()
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
        self.pts_backbone = build_backbone(cfg)
        self.pts_neck = build_neck(cfg)
        channels = cfg.neck.head_channels
        self.pts_bbox_head = AnchorHead(cfg.num_classes, channels, channels, cfg.anchors, cfg.code_size,
                                        dir_offset=None if legacy else cfg.dir_offset,
                                        dir_limit_offset=cfg.dir_limit_offset, legacy=legacy)
        self.memory_format = torch.contiguous_format
        self.mixed_precision = True
        self._folded: tuple[tuple, nn.Module, nn.Module] | None = None

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

    def set_channels_last(self, enabled: bool = True) -> PointPillars:
        """Dense part (backbone, neck, head) in channels_last memory format (faster on CPU)."""
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        for module in (self.pts_backbone, self.pts_neck, self.pts_bbox_head):
            module.to(memory_format=self.memory_format)
        return self

    def _dense(self) -> tuple[nn.Module, nn.Module]:
        """(backbone, neck) to run: the modules themselves in training; in eval, copies with BN folded into the
        convs (fewer memory passes: ~30% faster on CPU), rebuilt whenever a weight or buffer has changed."""
        if self.training:
            return self.pts_backbone, self.pts_neck
        tensors = itertools.chain(self.pts_backbone.parameters(), self.pts_backbone.buffers(),
                                  self.pts_neck.parameters(), self.pts_neck.buffers())
        key = (self.memory_format, *((t.data_ptr(), t._version) for t in tensors))
        if self._folded is None or self._folded[0] != key:
            fmt = self.memory_format
            self._folded = (key, fold_batchnorm(self.pts_backbone).to(memory_format=fmt),
                            fold_batchnorm(self.pts_neck).to(memory_format=fmt))
        return self._folded[1], self._folded[2]

    # --- stages, in data order ----------------------------------------------------------------------------

    def voxelize(self, clouds: Sequence[torch.Tensor]) -> Voxels:
        max_voxels = self.cfg.max_voxels[0 if self.training else 1]
        # the encoder consumes the pillars before the next voxelization: no copy of spconv's buffers needed
        return voxelize(clouds, self.cfg.voxel_size, self.cfg.point_cloud_range, self.cfg.max_points, max_voxels,
                        copy=False)

    def encode(self, vox: Voxels, batch_size: int) -> torch.Tensor:
        """Pillar features scattered into the (B, 64, ny, nx) BEV image."""
        feats = self.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors)
        bev = self.pts_middle_encoder(feats, vox.coors, batch_size)
        return bev.contiguous(memory_format=self.memory_format)

    def _autocast(self, device: torch.device):
        if device.type == "cuda" and self.mixed_precision:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def backbone(self, bev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self._autocast(bev.device):
            return self._dense()[0](bev)

    def neck(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        with self._autocast(feats[0].device):
            return self._dense()[1](feats)

    def head(self, feats: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        with self._autocast(feats[0].device):
            outs = self.pts_bbox_head(feats)
        return tuple([t.float() for t in level] for level in outs)

    def decode(self, outs: tuple[list[torch.Tensor], ...], score_thr: float | None = None) -> list[Detections]:
        cfg = self.cfg.test_cfg
        if score_thr is not None:
            cfg = replace(cfg, score_thr=score_thr)
        results = self.pts_bbox_head.predict(*outs, cfg)
        return [Detections(r["boxes"], r["scores"], r["labels"], self.cfg.class_names) for r in results]

    def run(self, clouds: Sequence[torch.Tensor], until: str = "decode", score_thr: float | None = None,
            timings: dict[str, float] | None = None) -> object:
        """Runs the stages of :data:`STAGES` up to ``until`` and returns that stage's output.

        With a ``timings`` dict, each stage's wall time (s) is added to it (the device is synchronized around
        each stage so the figures are per stage).
        """
        if until not in STAGES:
            raise RegNetExploreError(f"unknown stage {until!r}; stages are {', '.join(STAGES)}")
        device = clouds[0].device if len(clouds) else self.device
        steps: list[tuple[str, Callable]] = [
            ("voxelize", lambda _: self.voxelize(clouds)),
            ("encode", lambda vox: self.encode(vox, len(clouds))),
            ("backbone", self.backbone),
            ("neck", self.neck),
            ("head", self.head),
            ("decode", lambda outs: self.decode(outs, score_thr)),
        ]
        value = None
        for name, step in steps:
            if timings is not None:
                _sync(device)
                start = time.perf_counter()
            value = step(value)
            if timings is not None:
                _sync(device)
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            if name == until:
                break
        return value

    def forward(self, clouds: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        """Raw head outputs (cls_scores, bbox_preds, dir_cls_preds), one tensor per level (training)."""
        return self.run(list(clouds), until="head")

    @torch.no_grad()
    def predict(self, points: PointsLike, score_thr: float | None = None,
                timings: dict[str, float] | None = None) -> Detections | list[Detections]:
        """Boxes for one cloud (N, 4: x, y, z, time-lag; numpy or torch) or a list of clouds.

        One cloud gives one :class:`Detections`, a list gives a list. Runs in eval mode on the model's device.
        """
        single = isinstance(points, np.ndarray | torch.Tensor)
        clouds = [as_cloud(p, self.cfg.point_dims, self.device, i) for i, p in
                  enumerate([points] if single else points)]
        if not clouds:
            return []
        was_training = self.training
        self.eval()
        try:
            dets = self.run(clouds, score_thr=score_thr, timings=timings)
        finally:
            self.train(was_training)
        return dets[0] if single else dets

    # --- construction and analysis ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, name_or_config: str | DetectorConfig, checkpoint: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu", legacy: bool | None = None) -> PointPillars:
        """A detector in eval mode on ``device``, with weights from an mmdet3d-layout checkpoint if given.

        ``legacy=None`` reads the box convention from the checkpoint's meta (False without a checkpoint).
        """
        from regnet_explore.detection.checkpoint import checkpoint_is_legacy, load_state, read_checkpoint

        cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
        state = meta = None
        if checkpoint is not None:
            state, meta = read_checkpoint(checkpoint)
            if legacy is None:
                legacy = checkpoint_is_legacy(meta, checkpoint)
        model = cls(cfg, legacy=bool(legacy))
        if state is not None:
            load_state(model, state, checkpoint)
        device = torch.device(device)
        model.to(device).eval()
        if device.type == "cpu":
            model.set_channels_last(True)
        return model

    def complexity(self, height: int | None = None, width: int | None = None) -> dict[str, int]:
        """FLOPs (multiply-adds, pycls rules) and params of the dense part on the (ny, nx) BEV image, in total
        and per stage (``backbone_flops``, ``neck_flops``, ``head_flops``)."""
        ny, nx = self.cfg.bev_shape
        h, w = height or ny, width or nx
        b = self.cfg.backbone
        cx = Complexity(h, w)
        if b.type == "second":
            sizes = self.pts_backbone.complexity(cx)
        else:
            bb = regnet_complexity(b.arch, h, w, stem_channels=b.stem_channels, stem=False, strides=b.strides,
                                   num_classes=0)
            cx.flops, cx.params = bb["flops"], bb["params"]
            strides = np.cumprod(b.strides)
            sizes = [(-(-h // int(strides[i])), -(-w // int(strides[i]))) for i in b.out_indices]
        split = {"backbone_flops": cx.flops}
        sizes = self.pts_neck.complexity(cx, sizes)
        split["neck_flops"] = cx.flops - split["backbone_flops"]
        self.pts_bbox_head.complexity(cx, sizes)
        split["head_flops"] = cx.flops - split["backbone_flops"] - split["neck_flops"]
        return {"flops": cx.flops, "params": cx.params, **split}


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
