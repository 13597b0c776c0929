"""PointPillars detector configurations: plain dataclasses, one per concern, and a name -> config table.

Every row of mmdet3d's PointPillars / RegNet tables (configs/pointpillars, configs/regnet; branch 1.0 file names)
is here as a :class:`DetectorConfig`, built by ordinary functions, findable by its mmdet3d name or a short
alias. Copy one and change a field with ``dataclasses.replace``::

    cfg = get_config("regnet-400mf-fpn-nus")
    cfg = replace(cfg, voxel=replace(cfg.voxel, max_voxels=(20000, 20000)))
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.head import HeadTestConfig
from regnet_explore.detection.voxelize import grid_size
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import out_channels
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
class BackboneConfig:
    """``type='regnet'``: mmdet3d NoStemRegNet (``arch``, ``stem_channels`` input width, ``strides``,
    ``out_indices``); ``type='second'``: SECOND (``in_channels``, ``layer_nums``, ``layer_strides``,
    ``second_channels``)."""

    type: Literal["regnet", "second"] = "regnet"
    arch: str | RegNetStages = "regnetx_400mf"  # a zoo name, or explicit stages (a sampled network)
    stem_channels: int = 64
    strides: tuple[int, ...] = (1, 2, 2, 2)
    out_indices: tuple[int, ...] = (1, 2, 3)
    in_channels: int = 64
    layer_nums: tuple[int, ...] = (3, 5, 5)
    layer_strides: tuple[int, ...] = (2, 2, 2)
    second_channels: tuple[int, ...] = (64, 128, 256)
    norm: Literal["BN", "SyncBN"] = "SyncBN"
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01
    norm_eval: bool = False
    pretrained: str | None = "open-mmlab://regnetx_400mf"

    @property
    def out_channels(self) -> list[int]:
        if self.type == "second":
            return list(self.second_channels)
        return out_channels(self.arch, self.out_indices)

    @property
    def label(self) -> str:
        """'SECOND' or e.g. 'RegNetX-400MF'."""
        if self.type == "second":
            return "SECOND"
        if isinstance(self.arch, RegNetStages):
            return "RegNet(" + "-".join(map(str, self.arch.widths)) + ")"
        return "RegNetX-" + self.arch.removeprefix("regnetx_").upper()


@dataclass(frozen=True)
class NeckConfig:
    """``type='fpn'``: mmdet FPN to ``out_channels`` per level; ``type='secondfpn'``: deconvs to
    ``secfpn_channels`` with ``upsample_strides``, concatenated."""

    type: Literal["fpn", "secondfpn"]
    in_channels: tuple[int, ...]
    out_channels: int = 256
    secfpn_channels: tuple[int, ...] = (128, 128, 128)
    upsample_strides: tuple[int, ...] = (1, 2, 4)
    norm_eps: float = 1e-3
    norm_momentum: float = 0.01

    @property
    def head_channels(self) -> int:
        return self.out_channels if self.type == "fpn" else sum(self.secfpn_channels)


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


def _backbone(arch: str | None) -> BackboneConfig:
    if arch is None:
        return BackboneConfig(type="second", pretrained=None)
    return BackboneConfig(arch=arch, pretrained=f"open-mmlab://{arch}")


def _anchors(dataset: str, neck: str, extent: float) -> AnchorConfig:
    if neck == "fpn":
        z = -1.8
        custom = (0.0, 0.0) if dataset == "nuscenes" else ()
        return AnchorConfig(ranges=((-extent, -extent, z, extent, extent, z),), sizes=NUS_FPN_SIZES,
                            rotations=ROTATIONS, scales=(1.0, 2.0, 4.0), custom_values=custom)
    if dataset == "nuscenes":
        table, reach, custom = NUS_SECFPN_ANCHORS, 49.6, (0.0, 0.0)
    else:
        table, reach, custom = LYFT_SECFPN_ANCHORS, extent, ()
    return AnchorConfig(ranges=tuple((-reach, -reach, z, reach, reach, z) for _, z in table),
                        sizes=tuple(size for size, _ in table), rotations=ROTATIONS, scales=(1.0,),
                        custom_values=custom)


def build_config(dataset: Literal["nuscenes", "lyft"], neck: Literal["fpn", "secondfpn"], arch: str | None = None,
                 range100: bool = False, fp16: bool = False) -> DetectorConfig:
    """One mmdet3d PointPillars row: ``arch=None`` is the SECOND backbone, else a RegNetX zoo name."""
    backbone = _backbone(arch)
    neck_cfg = NeckConfig(type=neck, in_channels=tuple(backbone.out_channels))
    size_tag = "" if arch is None else arch.replace("regnetx_", "regnet-") + "_"
    neck_tag = "fpn" if neck == "fpn" else "secfpn"
    if dataset == "nuscenes":
        extent = 50.0
        voxel = VoxelConfig((-50, -50, -5, 50, 50, 3), (0.25, 0.25, 8), 64, (30000, 40000))
        encoder, classes, code_size = EncoderConfig(feat_channels=(64, 64)), NUSCENES_CLASSES, 9
        samples = 2 if fp16 else 4
        name = f"hv_pointpillars_{size_tag}{neck_tag}_sbn-all_{'fp16_2x8' if fp16 else '4x8'}_2x_nus-3d"
        alias = f"{size_tag.rstrip('_') + '-' if arch else ''}{neck_tag}{'-fp16' if fp16 else ''}-nus"
    else:
        extent = 100.0 if range100 else 80.0
        voxel = VoxelConfig((-extent, -extent, -5, extent, extent, 3), (0.25, 0.25, 8), 20, (60000, 60000))
        encoder, classes, code_size, samples = EncoderConfig(feat_channels=(64,)), LYFT_CLASSES, 7, 2
        name = f"hv_pointpillars_{size_tag}{neck_tag}_sbn-all_{'range100_' if range100 else ''}2x8_2x_lyft-3d"
        alias = f"{size_tag.rstrip('_') + '-' if arch else ''}{neck_tag}-lyft{'-range100' if range100 else ''}"
    return DetectorConfig(name=name, alias=alias, dataset=dataset, class_names=classes, voxel=voxel,
                          encoder=encoder, backbone=backbone, neck=neck_cfg, anchors=_anchors(dataset, neck, extent),
                          code_size=code_size, samples_per_gpu=samples)


def _all_configs() -> dict[str, DetectorConfig]:
    rows = [
        build_config("nuscenes", "secondfpn"),
        build_config("nuscenes", "secondfpn", "regnetx_400mf"),
        build_config("nuscenes", "fpn"),
        build_config("nuscenes", "fpn", "regnetx_400mf"),
        build_config("nuscenes", "fpn", "regnetx_1.6gf"),
        build_config("nuscenes", "fpn", "regnetx_400mf", fp16=True),
        build_config("lyft", "secondfpn"),
        build_config("lyft", "secondfpn", "regnetx_400mf"),
        build_config("lyft", "secondfpn", "regnetx_400mf", range100=True),
        build_config("lyft", "fpn"),
        build_config("lyft", "fpn", "regnetx_400mf"),
        build_config("lyft", "fpn", "regnetx_400mf", range100=True),
    ]
    return {cfg.name: cfg for cfg in rows}


CONFIGS: dict[str, DetectorConfig] = _all_configs()
ALIASES: dict[str, str] = {cfg.alias: name for name, cfg in CONFIGS.items()}


def with_backbone(cfg: DetectorConfig, stages: RegNetStages, name: str | None = None) -> DetectorConfig:
    """``cfg`` with another RegNet backbone (explicit stages, e.g. a sampled network); the neck follows its widths."""
    if cfg.backbone.type != "regnet":
        raise RegNetExploreError(f"{cfg.name} has a {cfg.backbone.type} backbone; start from a RegNet config")
    backbone = replace(cfg.backbone, arch=stages, pretrained=None)
    neck = replace(cfg.neck, in_channels=tuple(backbone.out_channels))
    return replace(cfg, backbone=backbone, neck=neck, name=name or f"{cfg.name}@{backbone.label}")


def get_config(name: str) -> DetectorConfig:
    """A config by mmdet3d name (``.py`` suffix allowed) or alias; unknown names list the known ones."""
    key = name.removesuffix(".py").rsplit("/", 1)[-1]
    key = ALIASES.get(key, key)
    if key not in CONFIGS:
        known = ", ".join(f"{alias} ({full})" for alias, full in ALIASES.items())
        raise RegNetExploreError(f"unknown detector config {name!r}; known configs: {known}")
    return CONFIGS[key]
