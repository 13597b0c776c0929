"""Detector configs: every reference row, aliases, values from mmdet3d's files, copy-and-change, the modules they
build and what those cost, and `regnet-explore configs --show`."""

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.detection import configs
from regnet_explore.detection.configs import (
    ALIASES,
    CONFIGS,
    FPNNeckConfig,
    RegNetBackboneConfig,
    SECONDBackboneConfig,
    SECONDFPNNeckConfig,
    detector_complexity,
    get_config,
    with_backbone,
)
from regnet_explore.detection.head import AnchorHead
from regnet_explore.detection.necks import FPN, SECONDFPN
from regnet_explore.detection.second import SECOND
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.design import generate_stages
from regnet_explore.regnet.zoo import zoo_params

from .helpers import cli_error

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
    assert isinstance(get_config("secfpn-nus").backbone, SECONDBackboneConfig)


def test_every_name_and_alias_is_written_once_in_the_table():
    source = Path(configs.__file__).read_text()
    table = source[source.index("CONFIG_TABLE: tuple"):source.index("\nCONFIGS: dict")]
    for name, cfg in CONFIGS.items():
        assert table.count(f'name="{name}"') == 1 and source.count(f'"{name}"') == 1, name
        assert table.count(f'alias="{cfg.alias}"') == 1, cfg.alias


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(RegNetExploreError, match="unknown detector config 'regnet-9gf'") as e:
        get_config("regnet-9gf")
    assert all(alias in str(e.value) for alias in ALIASES)
    assert "\n" not in str(e.value)


def test_every_neck_reads_every_backbone_map():
    for cfg in CONFIGS.values():
        assert cfg.neck.in_channels == cfg.backbone.out_channels, cfg.name


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
    cfg, sec = get_config("regnet-400mf-fpn-nus"), get_config("secfpn-lyft")
    for obj, field in ((cfg, "name"), (cfg.test_cfg, "score_thr"), (cfg.anchors, "sizes"), (cfg.voxel, "max_points"),
                       (cfg.backbone, "arch"), (cfg.neck, "out_channels"), (cfg.encoder, "feat_channels"),
                       (sec.backbone, "layer_nums"), (sec.neck, "upsample_strides")):
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


def test_backbone_and_neck_variants():
    sec = get_config("secfpn-nus")
    assert isinstance(sec.backbone, SECONDBackboneConfig) and isinstance(sec.neck, SECONDFPNNeckConfig)
    assert (sec.backbone.label, sec.neck.label, sec.neck.head_channels) == ("SECOND", "SECFPN", 384)
    assert not hasattr(sec.backbone, "pretrained")  # SECOND trains from scratch
    reg = get_config("regnet-1.6gf-fpn-nus")
    assert isinstance(reg.backbone, RegNetBackboneConfig) and isinstance(reg.neck, FPNNeckConfig)
    assert (reg.backbone.label, reg.neck.label, reg.neck.head_channels) == ("RegNetX-1.6GF", "FPN", 256)
    assert reg.backbone.pretrained == "open-mmlab://regnetx_1.6gf" and reg.backbone.out_channels == (168, 408, 912)
    sampled = with_backbone(reg, generate_stages(zoo_params("regnetx_200mf")))
    assert sampled.backbone.label == "RegNet(24-56-152-368)" and sampled.backbone.pretrained is None
    assert sampled.neck == replace(reg.neck, in_channels=(56, 152, 368))
    with pytest.raises(RegNetExploreError, match="has a SECOND backbone; start from a RegNet config"):
        with_backbone(sec, generate_stages(zoo_params("regnetx_200mf")))


@pytest.mark.parametrize("alias, module_types", [("secfpn-lyft", (SECOND, SECONDFPN)),
                                                 ("regnet-400mf-fpn-nus", (RegNet, FPN))])
def test_variants_build_their_module(alias, module_types):
    cfg = get_config(alias)
    with torch.device("meta"):
        backbone, neck = cfg.backbone.build(), cfg.neck.build()
    assert (type(backbone), type(neck)) == module_types
    assert list(neck.in_channels) == list(cfg.backbone.out_channels) == list(backbone.out_channels)
    bn = next(m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


KEYS = ("flops", "params", "backbone_flops", "neck_flops", "head_flops")


def _counted(cfg, height: int | None = None, width: int | None = None) -> dict[str, int]:
    """The dense part built on the meta device (shapes, no arithmetic) and run on a (1, C, ny, nx) canvas; forward
    hooks count each conv's and linear's multiply-adds by pycls's rules from the module and the tensors it saw, and
    the params are those of the built modules."""
    ny, nx = cfg.bev_shape
    with torch.device("meta"):
        channels = cfg.neck.head_channels
        stages = {"backbone": cfg.backbone.build(), "neck": cfg.neck.build(),
                  "head": AnchorHead(cfg.num_classes, channels, cfg.anchors, cfg.code_size)}
        canvas = torch.empty(1, cfg.encoder.feat_channels[-1], height or ny, width or nx)
    flops = dict.fromkeys(stages, 0)

    def count(stage):
        def hook(m, inputs, output):
            bias = 0 if m.bias is None else m.bias.numel()
            if isinstance(m, torch.nn.Linear):
                flops[stage] += inputs[0].numel() // m.in_features * m.in_features * m.out_features + bias
                return
            # a transposed conv counts its input pixels (each spreads a k x k patch), a conv its output pixels
            x = inputs[0] if isinstance(m, torch.nn.ConvTranspose2d) else output
            kh, kw = m.kernel_size
            flops[stage] += kh * kw * m.in_channels * m.out_channels * x.shape[-2] * x.shape[-1] // m.groups + bias
        return hook

    for stage, module in stages.items():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                m.register_forward_hook(count(stage))
    stages["head"](stages["neck"](stages["backbone"](canvas)))
    params = sum(p.numel() for module in stages.values() for p in module.parameters())
    return dict(zip(KEYS, (sum(flops.values()), params, flops["backbone"], flops["neck"], flops["head"])))


@pytest.mark.parametrize("alias", [cfg.alias for cfg in CONFIGS.values()])
def test_detector_complexity_of_every_row(alias):
    cfg = get_config(alias)
    counted = _counted(cfg)
    assert counted["flops"] > 10**10 and counted["params"] > 10**6  # the canvas went through every stage
    assert detector_complexity(cfg) == counted


def test_detector_complexity_of_a_sampled_backbone_on_another_grid():
    cfg = with_backbone(get_config("regnet-400mf-secfpn-lyft"), generate_stages(zoo_params("regnety_800mf")))
    assert detector_complexity(cfg) == _counted(cfg)
    small = _counted(cfg, 128, 96)
    assert detector_complexity(cfg, 128, 96) == small and small["params"] == _counted(cfg)["params"]


def test_configs_show_prints_one_config_whole(capsys):
    assert main(["configs", "--show", "regnet-400mf-fpn-nus"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d (alias regnet-400mf-fpn-nus)\n")
    for line in ("voxel:", "  point_cloud_range: [-50, -50, -5, 50, 50, 3]", "  max_voxels: [30000, 40000]",
                 "encoder:", "  type: HardVFE", "  feat_channels: [64, 64]",
                 "backbone:", "  type: NoStemRegNet", "  arch: regnetx_400mf", "  strides: [1, 2, 2, 2]",
                 "  pretrained: open-mmlab://regnetx_400mf",
                 "neck:", "  type: FPN", "  in_channels: [64, 160, 384]", "  out_channels: 256",
                 "anchors:", "  ranges:", "    - [-50.0, -50.0, -1.8, 50.0, 50.0, -1.8]", "    - [2.5981, 0.866, 1.0]",
                 "  scales: [1.0, 2.0, 4.0]", "test_cfg:", "  nms_thr: 0.2", "  max_num: 500", "code_size: 9"):
        assert line in out.splitlines(), line
    # every field of every part is shown
    cfg = get_config("regnet-400mf-fpn-nus")
    for part in ("voxel", "encoder", "backbone", "neck", "anchors", "test_cfg"):
        for field in dataclasses.fields(getattr(cfg, part)):
            assert f"  {field.name}:" in out, (part, field.name)


def test_configs_show_a_secfpn_row_and_an_unknown_name(capsys):
    assert main(["configs", "--show", "hv_pointpillars_secfpn_sbn-all_2x8_2x_lyft-3d.py"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  type: SECOND" in lines and "  layer_nums: [3, 5, 5]" in lines and "  type: SECONDFPN" in lines
    assert "    - [4.75, 1.92, 1.71]" in lines and "  custom_values: []" in lines
    err = cli_error(capsys, ["configs", "--show", "regnet-9gf"])
    assert err.startswith("regnet-explore configs: error: unknown detector config 'regnet-9gf'")
