"""The parts of a PointPillars detector config: frozen dataclasses, one per concern, and the whole detector's.

Backbone and neck have one config class per variant; each builds its module (``build()``) and costs it without
building it (``complexity(cx, sizes)``), so the detector needs no branch on the variant. The named configs of
the reference are the table in :mod:`regnet_explore.detection.configs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.head import AnchorHead, HeadTestConfig
from regnet_explore.detection.necks import FPN, SECONDFPN
from regnet_explore.detection.second import SECOND
from regnet_explore.detection.voxelize import grid_size
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, out_channels
from regnet_explore.regnet.complexity import Complexity
from regnet_explore.regnet.design import RegNetStages


@dataclass(frozen=True)
class VoxelConfig:
    """Hard voxelization into pillars; ``max_voxels`` is (training, testing)."""

    point_cloud_range: tuple[float, ...] = (-50, -50, -5, 50, 50, 3)
    voxel_size: tuple[float, ...] = (0.25, 0.25, 8)
    max_points: int = 64
    max_voxels: tuple[int, int] = (30000, 40000)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        return grid_size(self.point_cloud_range, self.voxel_size)


@dataclass(frozen=True)
class EncoderConfig:
    """HardVFE: ``in_channels`` point features (x, y, z, time-lag) + 6 decorations; BN1d eps / momentum."""

    in_channels: int = 4
    feat_channels: tuple[int, ...] = (64, 64)
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01


@dataclass(frozen=True)
class RegNetBackboneConfig:
    """mmdet3d ``NoStemRegNet``: ``arch`` (a zoo name, or explicit stages: a sampled network) fed the pillar canvas
    of ``stem_channels`` channels, one stride per stage, the ``out_indices`` stages to the neck."""

    arch: str | RegNetStages = "regnetx_400mf"
    stem_channels: int = 64
    strides: tuple[int, ...] = (1, 2, 2, 2)
    out_indices: tuple[int, ...] = (1, 2, 3)
    norm: Literal["BN", "SyncBN"] = "SyncBN"
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01
    norm_eval: bool = False
    pretrained: str | None = "open-mmlab://regnetx_400mf"

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(out_channels(self.arch, self.out_indices))

    @property
    def label(self) -> str:
        """e.g. 'RegNetX-400MF', or 'RegNet(64-160-384-896)' for explicit stages."""
        if isinstance(self.arch, RegNetStages):
            return "RegNet(" + "-".join(map(str, self.arch.widths)) + ")"
        return "RegNetX-" + self.arch.removeprefix("regnetx_").upper()

    def _module_args(self) -> dict:
        return dict(arch=self.arch, stem_channels=self.stem_channels, stem=False, strides=self.strides,
                    out_indices=self.out_indices, norm=self.norm, norm_eps=self.norm_eps,
                    norm_momentum=self.norm_momentum, norm_eval=self.norm_eval)

    def build(self) -> RegNet:
        return RegNet(**self._module_args())

    def complexity(self, cx: Complexity, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Adds the backbone's cost on its input map to ``cx``; returns the sizes of the maps to the neck."""
        return RegNet.complexity(cx, sizes, **self._module_args())


@dataclass(frozen=True)
class SECONDBackboneConfig:
    """mmdet3d ``SECOND``: per stage a ``layer_strides[i]`` conv to ``out_channels[i]``, then ``layer_nums[i]``
    more 3x3 convs; every stage goes to the neck. Trained from scratch (no pretrained weights)."""

    in_channels: int = 64
    out_channels: tuple[int, ...] = (64, 128, 256)
    layer_nums: tuple[int, ...] = (3, 5, 5)
    layer_strides: tuple[int, ...] = (2, 2, 2)
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01

    @property
    def label(self) -> str:
        return "SECOND"

    def _module_args(self) -> dict:
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, layer_nums=self.layer_nums,
                    layer_strides=self.layer_strides, eps=self.norm_eps, momentum=self.norm_momentum)

    def build(self) -> SECOND:
        return SECOND(**self._module_args())

    def complexity(self, cx: Complexity, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Adds the backbone's cost on its input map to ``cx``; returns the sizes of the maps to the neck."""
        return SECOND.complexity(cx, sizes, **self._module_args())


@dataclass(frozen=True)
class FPNNeckConfig:
    """mmdet ``FPN``: every input level to ``out_channels``, top-down sums; one head level per input."""

    in_channels: tuple[int, ...]
    out_channels: int = 256
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01

    @property
    def head_channels(self) -> int:
        return self.out_channels

    @property
    def label(self) -> str:
        return "FPN"

    def _module_args(self) -> dict:
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, eps=self.norm_eps,
                    momentum=self.norm_momentum)

    def build(self) -> FPN:
        return FPN(**self._module_args())

    def complexity(self, cx: Complexity, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Adds the neck's cost on the backbone's maps to ``cx``; returns the sizes of the head's levels."""
        return FPN.complexity(cx, sizes, **self._module_args())


@dataclass(frozen=True)
class SECONDFPNNeckConfig:
    """mmdet3d ``SECONDFPN``: each input deconvolved by its ``upsample_strides`` to ``out_channels``, the results
    concatenated into one head level of ``sum(out_channels)`` channels."""

    in_channels: tuple[int, ...]
    out_channels: tuple[int, ...] = (128, 128, 128)
    upsample_strides: tuple[int, ...] = (1, 2, 4)
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01

    @property
    def head_channels(self) -> int:
        return sum(self.out_channels)

    @property
    def label(self) -> str:
        return "SECFPN"

    def _module_args(self) -> dict:
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    upsample_strides=self.upsample_strides, eps=self.norm_eps, momentum=self.norm_momentum)

    def build(self) -> SECONDFPN:
        return SECONDFPN(**self._module_args())

    def complexity(self, cx: Complexity, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Adds the neck's cost on the backbone's maps to ``cx``; returns the sizes of the head's levels."""
        return SECONDFPN.complexity(cx, sizes, **self._module_args())


# any variant, for annotations and isinstance
BackboneConfig = RegNetBackboneConfig | SECONDBackboneConfig
NeckConfig = FPNNeckConfig | SECONDFPNNeckConfig


@dataclass(frozen=True)
class DetectorConfig:
    """A whole PointPillars detector: data geometry, modules, anchors, test-time settings.

    ``samples_per_gpu`` is the reference's per-process batch (the default batch of training and sweeps)."""

    name: str
    alias: str
    dataset: Literal["nuscenes", "lyft"]
    class_names: tuple[str, ...]
    voxel: VoxelConfig
    encoder: EncoderConfig
    backbone: BackboneConfig
    neck: NeckConfig
    anchors: AnchorConfig
    test_cfg: HeadTestConfig = field(default_factory=HeadTestConfig)
    code_size: int = 9
    dir_offset: float = -0.7854  # -pi/4 as written in the mmdet3d configs
    dir_limit_offset: float = 0.0
    point_dims: int = 4  # x, y, z, time-lag (intensity is not an input)
    samples_per_gpu: int = 4

    @property
    def point_cloud_range(self) -> tuple[float, ...]:
        return self.voxel.point_cloud_range

    @property
    def voxel_size(self) -> tuple[float, ...]:
        return self.voxel.voxel_size

    @property
    def max_points(self) -> int:
        return self.voxel.max_points

    @property
    def max_voxels(self) -> tuple[int, int]:
        return self.voxel.max_voxels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def bev_shape(self) -> tuple[int, int]:
        """Scatter canvas (ny, nx)."""
        nx, ny, _ = self.voxel.grid_size
        return ny, nx


def with_backbone(cfg: DetectorConfig, stages: RegNetStages, name: str | None = None) -> DetectorConfig:
    """``cfg`` with another RegNet backbone (explicit stages, e.g. a sampled network); the neck follows its widths."""
    if not isinstance(cfg.backbone, RegNetBackboneConfig):
        raise RegNetExploreError(f"{cfg.name} has a {cfg.backbone.label} backbone; start from a RegNet config")
    backbone = replace(cfg.backbone, arch=stages, pretrained=None)
    neck = replace(cfg.neck, in_channels=backbone.out_channels)
    return replace(cfg, backbone=backbone, neck=neck, name=name or f"{cfg.name}@{backbone.label}")


def detector_complexity(cfg: DetectorConfig, height: int | None = None, width: int | None = None) -> dict[str, int]:
    """FLOPs (multiply-adds, pycls rules) and params of the dense part on the (ny, nx) BEV image (or ``height`` x
    ``width``), in total and per stage (``backbone_flops``, ``neck_flops``, ``head_flops``); nothing is built."""
    ny, nx = cfg.bev_shape
    cx = Complexity(height or ny, width or nx)
    sizes = cfg.backbone.complexity(cx, [(cx.h, cx.w)])
    backbone_flops = cx.flops
    sizes = cfg.neck.complexity(cx, sizes)
    neck_flops = cx.flops - backbone_flops
    AnchorHead.complexity(cx, sizes, cfg.num_classes, cfg.neck.head_channels, cfg.anchors, cfg.code_size)
    return {"flops": cx.flops, "params": cx.params, "backbone_flops": backbone_flops, "neck_flops": neck_flops,
            "head_flops": cx.flops - backbone_flops - neck_flops}
