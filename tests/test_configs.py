"""Detector configs: every reference row, aliases, values from mmdet3d's files, copy-and-change."""

from dataclasses import replace

import pytest

from regnet_explore.detection.configs import ALIASES, CONFIGS, get_config
from regnet_explore.errors import RegNetExploreError

REFERENCE_ROWS = [
    "hv_pointpillars_secfpn_sbn-all_4x8_2x_nus-3d",
    "hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d",
    "hv_pointpillars_fpn_sbn-all_4x8_2x_nus-3d",
    "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d",
    "hv_pointpillars_regnet-1.6gf_fpn_sbn-all_4x8_2x_nus-3d",
    "hv_pointpillars_regnet-400mf_fpn_sbn-all_fp16_2x8_2x_nus-3d",
    "hv_pointpillars_secfpn_sbn-all_2x8_2x_lyft-3d",
    "hv_pointpillars_regnet-400mf_secfpn_sbn-all_2x8_2x_lyft-3d",
    "hv_pointpillars_regnet-400mf_secfpn_sbn-all_range100_2x8_2x_lyft-3d",
    "hv_pointpillars_fpn_sbn-all_2x8_2x_lyft-3d",
    "hv_pointpillars_regnet-400mf_fpn_sbn-all_2x8_2x_lyft-3d",
    "hv_pointpillars_regnet-400mf_fpn_sbn-all_range100_2x8_2x_lyft-3d",
]


def test_every_reference_row_exists_with_an_alias():
    assert sorted(CONFIGS) == sorted(REFERENCE_ROWS)
    assert len(ALIASES) == len(CONFIGS)
    for alias, name in ALIASES.items():
        assert get_config(alias) is CONFIGS[name]
        assert get_config(name + ".py") is CONFIGS[name]
    assert get_config("regnet-400mf-secfpn-lyft-range100").name == REFERENCE_ROWS[8]
    assert get_config("secfpn-nus").backbone.type == "second"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(RegNetExploreError, match="unknown detector config 'regnet-9gf'") as e:
        get_config("regnet-9gf")
    assert all(alias in str(e.value) for alias in ALIASES)
    assert "\n" not in str(e.value)


def test_regnet_neck_widths_equal_the_reference_configs():
    # pts_neck.in_channels written in mmdet3d configs/regnet/*.py
    assert get_config("regnet-400mf-fpn-nus").neck.in_channels == (64, 160, 384)
    assert get_config("regnet-400mf-secfpn-lyft").neck.in_channels == (64, 160, 384)
    assert get_config("regnet-1.6gf-fpn-nus").neck.in_channels == (168, 408, 912)
    assert get_config("fpn-nus").neck.in_channels == (64, 128, 256)  # SECOND out_channels


def test_nuscenes_values():
    cfg = get_config("regnet-400mf-fpn-nus")
    assert cfg.point_cloud_range == (-50, -50, -5, 50, 50, 3) and cfg.voxel_size == (0.25, 0.25, 8)
    assert (cfg.max_points, cfg.max_voxels, cfg.bev_shape) == (64, (30000, 40000), (400, 400))
    assert cfg.encoder.feat_channels == (64, 64) and cfg.encoder.in_channels == cfg.point_dims == 4
    b = cfg.backbone
    assert (b.arch, b.stem_channels, b.strides, b.out_indices) == ("regnetx_400mf", 64, (1, 2, 2, 2), (1, 2, 3))
    assert (b.norm, b.norm_eps, b.norm_momentum, b.norm_eval) == ("SyncBN", 1e-3, 0.01, False)
    assert cfg.num_classes == 10 and cfg.code_size == 9 and cfg.dir_offset == -0.7854
    assert cfg.anchors.scales == (1.0, 2.0, 4.0) and cfg.anchors.num_per_location == 8
    assert cfg.anchors.custom_values == (0.0, 0.0) and cfg.anchors.ranges == ((-50, -50, -1.8, 50, 50, -1.8),)
    t = cfg.test_cfg
    assert (t.nms_pre, t.nms_thr, t.score_thr, t.max_num, t.use_rotate_nms) == (1000, 0.2, 0.05, 500, True)
    sec = get_config("regnet-400mf-secfpn-nus")
    assert sec.neck.head_channels == 384 and sec.anchors.num_per_location == 14
    assert sec.anchors.ranges[0] == (-49.6, -49.6, -1.80032795, 49.6, 49.6, -1.80032795)
    assert sec.anchors.sizes[-1] == (0.48578221, 2.49008838, 0.98297065)
    fp16 = get_config("regnet-400mf-fpn-fp16-nus")
    assert fp16.samples_per_gpu == 2 and replace(fp16, name=cfg.name, alias=cfg.alias, samples_per_gpu=4) == cfg


def test_the_config_table_cannot_be_changed_through_a_lookup():
    import dataclasses

    cfg = get_config("regnet-400mf-fpn-nus")
    for obj, field in ((cfg, "name"), (cfg.test_cfg, "score_thr"), (cfg.anchors, "sizes"), (cfg.voxel, "max_points"),
                       (cfg.backbone, "arch"), (cfg.neck, "out_channels"), (cfg.encoder, "feat_channels")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert get_config("regnet-400mf-fpn-nus").test_cfg.score_thr == 0.05


def test_lyft_values():
    cfg = get_config("regnet-400mf-fpn-lyft")
    assert (cfg.max_points, cfg.max_voxels, cfg.bev_shape) == (20, (60000, 60000), (640, 640))
    assert cfg.encoder.feat_channels == (64,) and cfg.num_classes == 9 and cfg.code_size == 7
    assert cfg.anchors.custom_values == () and cfg.samples_per_gpu == 2
    far = get_config("regnet-400mf-fpn-lyft-range100")
    assert far.point_cloud_range == (-100, -100, -5, 100, 100, 3) and far.bev_shape == (800, 800)
    sec = get_config("regnet-400mf-secfpn-lyft-range100")
    assert sec.anchors.num_per_location == 18 and sec.anchors.ranges[1] == (-100, -100, -0.3033737, 100, 100,
                                                                            -0.3033737)
    assert get_config("secfpn-lyft").anchors.sizes[0] == (4.75, 1.92, 1.71)


def test_copy_and_change_a_field():
    cfg = get_config("regnet-400mf-fpn-nus")
    small = replace(cfg, voxel=replace(cfg.voxel, max_voxels=(1000, 2000)))
    assert small.max_voxels == (1000, 2000) and cfg.max_voxels == (30000, 40000)
    with pytest.raises(AttributeError):
        cfg.voxel.max_points = 3  # frozen: the table cannot be edited by accident
