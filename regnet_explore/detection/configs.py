"""The named PointPillars detector configurations: every row of mmdet3d's PointPillars / RegNet tables.

One :class:`DetectorConfig` per mmdet3d config file (configs/pointpillars, configs/regnet; branch 1.0 file names),
findable by that name or a short alias. A row writes out what sets it apart; the fields it leaves out take the
defaults of the parts' classes (:mod:`regnet_explore.detection.config_parts`), which are the values every
reference row shares (norm eps / momentum, strides, test_cfg, dir_offset). Copy a config and change a field with
``dataclasses.replace``::

    cfg = get_config("regnet-400mf-fpn-nus")
    cfg = replace(cfg, voxel=replace(cfg.voxel, max_voxels=(20000, 20000)))
"""

from __future__ import annotations

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.config_parts import (
    BackboneConfig,
    DetectorConfig,
    EncoderConfig,
    FPNNeckConfig,
    NeckConfig,
    RegNetBackboneConfig,
    SECONDBackboneConfig,
    SECONDFPNNeckConfig,
    VoxelConfig,
    detector_complexity,
    with_backbone,
)
from regnet_explore.detection.head import HeadTestConfig
from regnet_explore.errors import RegNetExploreError

__all__ = [
    "ALIASES", "CONFIGS", "CONFIG_TABLE", "FPN_ANCHOR_SIZES", "LYFT_CLASSES", "LYFT_RANGE100_SECFPN_RANGES",
    "LYFT_SECFPN_RANGES", "LYFT_SECFPN_SIZES", "NUSCENES_CLASSES", "NUS_SECFPN_RANGES", "NUS_SECFPN_SIZES",
    "AnchorConfig", "BackboneConfig", "DetectorConfig", "EncoderConfig", "FPNNeckConfig", "HeadTestConfig",
    "NeckConfig", "RegNetBackboneConfig", "SECONDBackboneConfig", "SECONDFPNNeckConfig", "VoxelConfig",
    "detector_complexity", "get_config", "with_backbone",
]

NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
LYFT_CLASSES = ("car", "truck", "bus", "emergency_vehicle", "other_vehicle", "motorcycle", "bicycle", "pedestrian",
                "animal")

# FPN heads, nuScenes and Lyft alike: four (l, w, h) sizes on one range at z -1.8, scaled 1, 2, 4 per level
FPN_ANCHOR_SIZES = ((2.5981, 0.8660, 1.0), (1.7321, 0.5774, 1.0), (1.0, 1.0, 1.0), (0.4, 0.4, 1.0))

# SECFPN heads: one (l, w, h) size per anchor class, each on its own range whose z is that class's anchor bottom
NUS_SECFPN_SIZES = (
    (4.60718145, 1.95017717, 1.72270761),  # car
    (6.73778078, 2.4560939, 2.73004906),  # truck
    (12.01320693, 2.87427237, 3.81509561),  # trailer
    (1.68452161, 0.60058911, 1.27192197),  # bicycle
    (0.7256437, 0.66344886, 1.75748069),  # pedestrian
    (0.40359262, 0.39694519, 1.06232151),  # traffic_cone
    (0.48578221, 2.49008838, 0.98297065),  # barrier
)
NUS_SECFPN_RANGES = (
    (-49.6, -49.6, -1.80032795, 49.6, 49.6, -1.80032795),
    (-49.6, -49.6, -1.74440365, 49.6, 49.6, -1.74440365),
    (-49.6, -49.6, -1.68526504, 49.6, 49.6, -1.68526504),
    (-49.6, -49.6, -1.67339111, 49.6, 49.6, -1.67339111),
    (-49.6, -49.6, -1.61785072, 49.6, 49.6, -1.61785072),
    (-49.6, -49.6, -1.80984986, 49.6, 49.6, -1.80984986),
    (-49.6, -49.6, -1.763965, 49.6, 49.6, -1.763965),
)
LYFT_SECFPN_SIZES = (
    (4.75, 1.92, 1.71),  # car
    (10.24, 2.84, 3.44),  # truck
    (12.70, 2.92, 3.42),  # bus
    (6.52, 2.42, 2.34),  # emergency_vehicle
    (8.17, 2.75, 3.20),  # other_vehicle
    (2.35, 0.96, 1.59),  # motorcycle
    (1.76, 0.63, 1.44),  # bicycle
    (0.80, 0.76, 1.76),  # pedestrian
    (0.73, 0.35, 0.50),  # animal
)
LYFT_SECFPN_RANGES = (
    (-80.0, -80.0, -1.0715024, 80.0, 80.0, -1.0715024),
    (-80.0, -80.0, -0.3033737, 80.0, 80.0, -0.3033737),
    (-80.0, -80.0, -0.3519405, 80.0, 80.0, -0.3519405),
    (-80.0, -80.0, -0.8871424, 80.0, 80.0, -0.8871424),
    (-80.0, -80.0, -0.6276341, 80.0, 80.0, -0.6276341),
    (-80.0, -80.0, -1.3220503, 80.0, 80.0, -1.3220503),
    (-80.0, -80.0, -1.0709302, 80.0, 80.0, -1.0709302),
    (-80.0, -80.0, -0.9122268, 80.0, 80.0, -0.9122268),
    (-80.0, -80.0, -1.8012227, 80.0, 80.0, -1.8012227),
)
LYFT_RANGE100_SECFPN_RANGES = (
    (-100.0, -100.0, -1.0715024, 100.0, 100.0, -1.0715024),
    (-100.0, -100.0, -0.3033737, 100.0, 100.0, -0.3033737),
    (-100.0, -100.0, -0.3519405, 100.0, 100.0, -0.3519405),
    (-100.0, -100.0, -0.8871424, 100.0, 100.0, -0.8871424),
    (-100.0, -100.0, -0.6276341, 100.0, 100.0, -0.6276341),
    (-100.0, -100.0, -1.3220503, 100.0, 100.0, -1.3220503),
    (-100.0, -100.0, -1.0709302, 100.0, 100.0, -1.0709302),
    (-100.0, -100.0, -0.9122268, 100.0, 100.0, -0.9122268),
    (-100.0, -100.0, -1.8012227, 100.0, 100.0, -1.8012227),
)

# nuScenes: a 100 m square, boxes with velocity (code_size 9; custom_values are the anchors' zero velocity).
# Lyft: a 160 m square (range100: 200 m), no velocity (code_size 7). fp16: 2 samples per GPU.
CONFIG_TABLE: tuple[DetectorConfig, ...] = (
    DetectorConfig(
        name="hv_pointpillars_secfpn_sbn-all_4x8_2x_nus-3d", alias="secfpn-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=SECONDBackboneConfig(),
        neck=SECONDFPNNeckConfig(in_channels=(64, 128, 256)),
        anchors=AnchorConfig(ranges=NUS_SECFPN_RANGES, sizes=NUS_SECFPN_SIZES, rotations=(0.0, 1.57), scales=(1.0,),
                             custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=4),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d", alias="regnet-400mf-secfpn-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=SECONDFPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=NUS_SECFPN_RANGES, sizes=NUS_SECFPN_SIZES, rotations=(0.0, 1.57), scales=(1.0,),
                             custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=4),
    DetectorConfig(
        name="hv_pointpillars_fpn_sbn-all_4x8_2x_nus-3d", alias="fpn-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=SECONDBackboneConfig(),
        neck=FPNNeckConfig(in_channels=(64, 128, 256)),
        anchors=AnchorConfig(ranges=((-50.0, -50.0, -1.8, 50.0, 50.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=4),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d", alias="regnet-400mf-fpn-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=FPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=((-50.0, -50.0, -1.8, 50.0, 50.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=4),
    DetectorConfig(
        name="hv_pointpillars_regnet-1.6gf_fpn_sbn-all_4x8_2x_nus-3d", alias="regnet-1.6gf-fpn-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=RegNetBackboneConfig(arch="regnetx_1.6gf", pretrained="open-mmlab://regnetx_1.6gf"),
        neck=FPNNeckConfig(in_channels=(168, 408, 912)),
        anchors=AnchorConfig(ranges=((-50.0, -50.0, -1.8, 50.0, 50.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=4),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_fpn_sbn-all_fp16_2x8_2x_nus-3d", alias="regnet-400mf-fpn-fp16-nus",
        dataset="nuscenes", class_names=NUSCENES_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-50, -50, -5, 50, 50, 3), voxel_size=(0.25, 0.25, 8), max_points=64,
                          max_voxels=(30000, 40000)),
        encoder=EncoderConfig(feat_channels=(64, 64)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=FPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=((-50.0, -50.0, -1.8, 50.0, 50.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=(0.0, 0.0)),
        code_size=9, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_secfpn_sbn-all_2x8_2x_lyft-3d", alias="secfpn-lyft",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-80.0, -80.0, -5, 80.0, 80.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=SECONDBackboneConfig(),
        neck=SECONDFPNNeckConfig(in_channels=(64, 128, 256)),
        anchors=AnchorConfig(ranges=LYFT_SECFPN_RANGES, sizes=LYFT_SECFPN_SIZES, rotations=(0.0, 1.57),
                             scales=(1.0,), custom_values=()),
        code_size=7, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_secfpn_sbn-all_2x8_2x_lyft-3d", alias="regnet-400mf-secfpn-lyft",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-80.0, -80.0, -5, 80.0, 80.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=SECONDFPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=LYFT_SECFPN_RANGES, sizes=LYFT_SECFPN_SIZES, rotations=(0.0, 1.57),
                             scales=(1.0,), custom_values=()),
        code_size=7, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_secfpn_sbn-all_range100_2x8_2x_lyft-3d",
        alias="regnet-400mf-secfpn-lyft-range100",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-100.0, -100.0, -5, 100.0, 100.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=SECONDFPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=LYFT_RANGE100_SECFPN_RANGES, sizes=LYFT_SECFPN_SIZES, rotations=(0.0, 1.57),
                             scales=(1.0,), custom_values=()),
        code_size=7, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_fpn_sbn-all_2x8_2x_lyft-3d", alias="fpn-lyft",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-80.0, -80.0, -5, 80.0, 80.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=SECONDBackboneConfig(),
        neck=FPNNeckConfig(in_channels=(64, 128, 256)),
        anchors=AnchorConfig(ranges=((-80.0, -80.0, -1.8, 80.0, 80.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=()),
        code_size=7, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_fpn_sbn-all_2x8_2x_lyft-3d", alias="regnet-400mf-fpn-lyft",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-80.0, -80.0, -5, 80.0, 80.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=FPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=((-80.0, -80.0, -1.8, 80.0, 80.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=()),
        code_size=7, samples_per_gpu=2),
    DetectorConfig(
        name="hv_pointpillars_regnet-400mf_fpn_sbn-all_range100_2x8_2x_lyft-3d", alias="regnet-400mf-fpn-lyft-range100",
        dataset="lyft", class_names=LYFT_CLASSES,
        voxel=VoxelConfig(point_cloud_range=(-100.0, -100.0, -5, 100.0, 100.0, 3), voxel_size=(0.25, 0.25, 8),
                          max_points=20, max_voxels=(60000, 60000)),
        encoder=EncoderConfig(feat_channels=(64,)),
        backbone=RegNetBackboneConfig(arch="regnetx_400mf", pretrained="open-mmlab://regnetx_400mf"),
        neck=FPNNeckConfig(in_channels=(64, 160, 384)),
        anchors=AnchorConfig(ranges=((-100.0, -100.0, -1.8, 100.0, 100.0, -1.8),), sizes=FPN_ANCHOR_SIZES,
                             rotations=(0.0, 1.57), scales=(1.0, 2.0, 4.0), custom_values=()),
        code_size=7, samples_per_gpu=2),
)
CONFIGS: dict[str, DetectorConfig] = {cfg.name: cfg for cfg in CONFIG_TABLE}
ALIASES: dict[str, str] = {cfg.alias: cfg.name for cfg in CONFIG_TABLE}


def get_config(name: str) -> DetectorConfig:
    """A config by mmdet3d name (``.py`` suffix allowed) or alias; unknown names list the known ones."""
    key = name.removesuffix(".py").rsplit("/", 1)[-1]
    key = ALIASES.get(key, key)
    if key not in CONFIGS:
        known = ", ".join(f"{alias} ({full})" for alias, full in ALIASES.items())
        raise RegNetExploreError(f"unknown detector config {name!r}; known configs: {known}")
    return CONFIGS[key]
