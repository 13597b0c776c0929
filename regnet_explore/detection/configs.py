"""PointPillars detector configurations: frozen dataclasses, one per concern, and the table of reference rows.

Every row of mmdet3d's PointPillars / RegNet tables (configs/pointpillars, configs/regnet; branch 1.0 file names)
is one line of :data:`CONFIG_TABLE`, findable by its mmdet3d name or a short alias. Backbone and neck have one
config class per variant; each builds its module (``build()``) and costs it without building it
(``complexity(cx, sizes)``), so the detector needs no branch on the variant. Copy a config and change a field
with ``dataclasses.replace``::

    cfg = get_config("regnet-400mf-fpn-nus")
    cfg = replace(cfg, voxel=replace(cfg.voxel, max_voxels=(20000, 20000)))
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

NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
LYFT_CLASSES = ("car", "truck", "bus", "emergency_vehicle", "other_vehicle", "motorcycle", "bicycle", "pedestrian",
                "animal")


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
    """A whole PointPillars detector: data geometry, modules, anchors, test-time settings."""

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
    num_gpus: int = 8

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


# --- the reference rows -------------------------------------------------------------------------------------

NUS_FPN_SIZES = ((2.5981, 0.8660, 1.0), (1.7321, 0.5774, 1.0), (1.0, 1.0, 1.0), (0.4, 0.4, 1.0))
NUS_SECFPN_ANCHORS = (  # (l, w, h), z bottom; car, truck, trailer, bicycle, pedestrian, traffic_cone, barrier
    ((4.60718145, 1.95017717, 1.72270761), -1.80032795),
    ((6.73778078, 2.4560939, 2.73004906), -1.74440365),
    ((12.01320693, 2.87427237, 3.81509561), -1.68526504),
    ((1.68452161, 0.60058911, 1.27192197), -1.67339111),
    ((0.7256437, 0.66344886, 1.75748069), -1.61785072),
    ((0.40359262, 0.39694519, 1.06232151), -1.80984986),
    ((0.48578221, 2.49008838, 0.98297065), -1.763965),
)
LYFT_SECFPN_ANCHORS = (  # car, truck, bus, emergency_vehicle, other_vehicle, motorcycle, bicycle, pedestrian, animal
    ((4.75, 1.92, 1.71), -1.0715024),
    ((10.24, 2.84, 3.44), -0.3033737),
    ((12.70, 2.92, 3.42), -0.3519405),
    ((6.52, 2.42, 2.34), -0.8871424),
    ((8.17, 2.75, 3.20), -0.6276341),
    ((2.35, 0.96, 1.59), -1.3220503),
    ((1.76, 0.63, 1.44), -1.0709302),
    ((0.80, 0.76, 1.76), -0.9122268),
    ((0.73, 0.35, 0.50), -1.8012227),
)
ROTATIONS = (0.0, 1.57)


def _regnet(arch: str) -> RegNetBackboneConfig:
    """The reference NoStemRegNet of a zoo ``arch``, started from its ImageNet weights."""
    return RegNetBackboneConfig(arch=arch, pretrained=f"open-mmlab://{arch}")


SECOND_BACKBONE = SECONDBackboneConfig()
REGNETX_400MF = _regnet("regnetx_400mf")
REGNETX_1_6GF = _regnet("regnetx_1.6gf")


def _neck(kind: Literal["fpn", "secfpn"], backbone: BackboneConfig) -> NeckConfig:
    """The neck reads every map the backbone gives it."""
    if kind == "fpn":
        return FPNNeckConfig(in_channels=backbone.out_channels)
    return SECONDFPNNeckConfig(in_channels=backbone.out_channels)


def _fpn_anchors(extent: float, custom_values: tuple[float, ...]) -> AnchorConfig:
    """FPN heads: four shared sizes on the whole +-``extent`` square at z -1.8, scaled 1, 2, 4 per level."""
    return AnchorConfig(ranges=((-extent, -extent, -1.8, extent, extent, -1.8),), sizes=NUS_FPN_SIZES,
                        rotations=ROTATIONS, scales=(1.0, 2.0, 4.0), custom_values=custom_values)


def _class_anchors(table: tuple, reach: float, custom_values: tuple[float, ...]) -> AnchorConfig:
    """SECFPN heads: one size per class, each at its own z, over +-``reach``; one level."""
    return AnchorConfig(ranges=tuple((-reach, -reach, z, reach, reach, z) for _, z in table),
                        sizes=tuple(size for size, _ in table), rotations=ROTATIONS, scales=(1.0,),
                        custom_values=custom_values)


def _nuscenes(name: str, alias: str, backbone: BackboneConfig, neck: Literal["fpn", "secfpn"],
              samples_per_gpu: int = 4) -> DetectorConfig:
    """A nuScenes row: a 100 m square of 0.25 m pillars (400 x 400), 10 classes, boxes with velocity."""
    custom = (0.0, 0.0)  # the anchors' velocity
    anchors = _fpn_anchors(50.0, custom) if neck == "fpn" else _class_anchors(NUS_SECFPN_ANCHORS, 49.6, custom)
    return DetectorConfig(name=name, alias=alias, dataset="nuscenes", class_names=NUSCENES_CLASSES,
                          voxel=VoxelConfig((-50, -50, -5, 50, 50, 3), (0.25, 0.25, 8), 64, (30000, 40000)),
                          encoder=EncoderConfig(feat_channels=(64, 64)), backbone=backbone,
                          neck=_neck(neck, backbone), anchors=anchors, code_size=9, samples_per_gpu=samples_per_gpu)


def _lyft(name: str, alias: str, backbone: BackboneConfig, neck: Literal["fpn", "secfpn"],
          extent: float = 80.0) -> DetectorConfig:
    """A Lyft row: a +-``extent`` square of 0.25 m pillars, 9 classes, boxes without velocity."""
    anchors = _fpn_anchors(extent, ()) if neck == "fpn" else _class_anchors(LYFT_SECFPN_ANCHORS, extent, ())
    return DetectorConfig(name=name, alias=alias, dataset="lyft", class_names=LYFT_CLASSES,
                          voxel=VoxelConfig((-extent, -extent, -5, extent, extent, 3), (0.25, 0.25, 8), 20,
                                            (60000, 60000)),
                          encoder=EncoderConfig(feat_channels=(64,)), backbone=backbone, neck=_neck(neck, backbone),
                          anchors=anchors, code_size=7, samples_per_gpu=2)


# One row per mmdet3d config file (configs/pointpillars, configs/regnet): name, alias, backbone, neck, and what
# sets the row apart (fp16: 2 samples per GPU; range100: a +-100 m square).
CONFIG_TABLE: tuple[DetectorConfig, ...] = (
    _nuscenes("hv_pointpillars_secfpn_sbn-all_4x8_2x_nus-3d", "secfpn-nus",
              SECOND_BACKBONE, "secfpn"),
    _nuscenes("hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d", "regnet-400mf-secfpn-nus",
              REGNETX_400MF, "secfpn"),
    _nuscenes("hv_pointpillars_fpn_sbn-all_4x8_2x_nus-3d", "fpn-nus",
              SECOND_BACKBONE, "fpn"),
    _nuscenes("hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d", "regnet-400mf-fpn-nus",
              REGNETX_400MF, "fpn"),
    _nuscenes("hv_pointpillars_regnet-1.6gf_fpn_sbn-all_4x8_2x_nus-3d", "regnet-1.6gf-fpn-nus",
              REGNETX_1_6GF, "fpn"),
    _nuscenes("hv_pointpillars_regnet-400mf_fpn_sbn-all_fp16_2x8_2x_nus-3d", "regnet-400mf-fpn-fp16-nus",
              REGNETX_400MF, "fpn", samples_per_gpu=2),
    _lyft("hv_pointpillars_secfpn_sbn-all_2x8_2x_lyft-3d", "secfpn-lyft",
          SECOND_BACKBONE, "secfpn"),
    _lyft("hv_pointpillars_regnet-400mf_secfpn_sbn-all_2x8_2x_lyft-3d", "regnet-400mf-secfpn-lyft",
          REGNETX_400MF, "secfpn"),
    _lyft("hv_pointpillars_regnet-400mf_secfpn_sbn-all_range100_2x8_2x_lyft-3d", "regnet-400mf-secfpn-lyft-range100",
          REGNETX_400MF, "secfpn", extent=100.0),
    _lyft("hv_pointpillars_fpn_sbn-all_2x8_2x_lyft-3d", "fpn-lyft",
          SECOND_BACKBONE, "fpn"),
    _lyft("hv_pointpillars_regnet-400mf_fpn_sbn-all_2x8_2x_lyft-3d", "regnet-400mf-fpn-lyft",
          REGNETX_400MF, "fpn"),
    _lyft("hv_pointpillars_regnet-400mf_fpn_sbn-all_range100_2x8_2x_lyft-3d", "regnet-400mf-fpn-lyft-range100",
          REGNETX_400MF, "fpn", extent=100.0),
)
CONFIGS: dict[str, DetectorConfig] = {cfg.name: cfg for cfg in CONFIG_TABLE}
ALIASES: dict[str, str] = {cfg.alias: cfg.name for cfg in CONFIG_TABLE}


def with_backbone(cfg: DetectorConfig, stages: RegNetStages, name: str | None = None) -> DetectorConfig:
    """``cfg`` with another RegNet backbone (explicit stages, e.g. a sampled network); the neck follows its widths."""
    if not isinstance(cfg.backbone, RegNetBackboneConfig):
        raise RegNetExploreError(f"{cfg.name} has a {cfg.backbone.label} backbone; start from a RegNet config")
    backbone = replace(cfg.backbone, arch=stages, pretrained=None)
    neck = replace(cfg.neck, in_channels=backbone.out_channels)
    return replace(cfg, backbone=backbone, neck=neck, name=name or f"{cfg.name}@{backbone.label}")


def get_config(name: str) -> DetectorConfig:
    """A config by mmdet3d name (``.py`` suffix allowed) or alias; unknown names list the known ones."""
    key = name.removesuffix(".py").rsplit("/", 1)[-1]
    key = ALIASES.get(key, key)
    if key not in CONFIGS:
        known = ", ".join(f"{alias} ({full})" for alias, full in ALIASES.items())
        raise RegNetExploreError(f"unknown detector config {name!r}; known configs: {known}")
    return CONFIGS[key]


def detector_complexity(cfg: DetectorConfig, height: int | None = None, width: int | None = None) -> dict[str, int]:
    """FLOPs (multiply-adds, pycls rules) and params of the dense part on the (ny, nx) BEV image (or ``height`` x
    ``width``), in total and per stage (``backbone_flops``, ``neck_flops``, ``head_flops``); nothing is built."""
    ny, nx = cfg.bev_shape
    cx = Complexity(height or ny, width or nx)
    sizes = cfg.backbone.complexity(cx, [(cx.h, cx.w)])
    backbone_flops = cx.flops
    sizes = cfg.neck.complexity(cx, sizes)
    neck_flops = cx.flops - backbone_flops
    channels = cfg.neck.head_channels
    AnchorHead.complexity(cx, sizes, cfg.num_classes, channels, channels, cfg.anchors, cfg.code_size)
    return {"flops": cx.flops, "params": cx.params, "backbone_flops": backbone_flops, "neck_flops": neck_flops,
            "head_flops": cx.flops - backbone_flops - neck_flops}
