"""Design space: widths, stages, rounding and complexity against pycls itself and the zoo figures."""

from __future__ import annotations

import numpy as np
import pytest

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, regnet_complexity
from regnet_explore.regnet.design import (
    RegNetParams,
    block_widths,
    design_space_violations,
    generate_stages,
    stages_from_blocks,
)
from regnet_explore.regnet.zoo import ZOO, zoo_entry, zoo_params

pycls_regnet = pytest.importorskip("pycls.models.regnet")


@pytest.mark.parametrize("name", list(ZOO))
def test_stages_equal_pycls_algorithm(name):
    p = ZOO[name].params
    ws, num_stages, _, _ = pycls_regnet.generate_regnet(p.wa, p.w0, p.wm, p.depth)
    s_ws, s_ds = pycls_regnet.get_stages_from_blocks(ws, ws)
    s_ws, s_gs = pycls_regnet.adjust_ws_gs_comp(s_ws, [p.bot_mul] * num_stages, [p.group_w] * num_stages)
    st = generate_stages(p)
    assert list(block_widths(p.depth, p.w0, p.wa, p.wm).quantized) == ws
    assert list(st.widths) == s_ws
    assert list(st.depths) == s_ds
    assert list(st.group_widths) == s_gs


@pytest.mark.parametrize("name", list(ZOO))
def test_complexity_equals_zoo_figures(name):
    entry = ZOO[name]
    cx = regnet_complexity(entry.params)
    assert cx["flops"] == entry.reference.flops
    assert cx["params"] == entry.reference.params
    assert abs(cx["acts"] / entry.reference.acts - 1) < 1e-3


@pytest.mark.parametrize("name", ["RegNetX-400MF", "RegNetY-600MF", "RegNetX-8.0GF"])
def test_complexity_equals_pycls_complexity_and_module_params(name):
    from pycls.models.anynet import AnyNet

    st = generate_stages(zoo_params(name))
    pycls_cx = AnyNet.complexity(
        {"h": 224, "w": 224, "flops": 0, "params": 0, "acts": 0}, stem_type="simple_stem_in", stem_w=32,
        block_type="res_bottleneck_block", ds=list(st.depths), ws=list(st.widths), ss=[2] * 4,
        bms=list(st.bot_muls), gws=list(st.group_widths), se_r=st.se_ratio, nc=1000)
    ours = regnet_complexity(st)
    assert {k: pycls_cx[k] for k in ("flops", "params", "acts")} == ours
    model = RegNet(name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == ours["params"]


def test_worked_example_400mf():
    b = block_widths(22, 24, 24.48, 2.54)
    assert np.allclose(b.continuous[:3], [24.0, 48.48, 72.96])
    assert list(b.exponents) == [0, 1, 1] + [2] * 7 + [3] * 12
    assert stages_from_blocks(b.quantized) == ([24, 64, 152, 392], [1, 2, 7, 12])
    st = generate_stages(zoo_params("regnetx_400mf"))
    assert st.pre_adjust_widths == (24, 64, 152, 392)
    assert st.widths == (32, 64, 160, 384) and st.groups == (2, 4, 10, 24)


def test_bankers_vs_half_up_rounding():
    p = zoo_params("RegNetX-400MF")
    assert generate_stages(p, "half_up").widths == (32, 64, 160, 400)
    # torchvision's regnet_x_400mf has 5,495,976 parameters; pycls 5,157,512
    assert regnet_complexity(generate_stages(p, "half_up"))["params"] == 5_495_976
    assert regnet_complexity(generate_stages(p, "bankers"))["params"] == 5_157_512
    # the other RegNetX sizes torchvision builds agree between the two conventions
    for name in ["RegNetX-800MF", "RegNetX-1.6GF", "RegNetX-3.2GF", "RegNetX-8.0GF", "RegNetX-16GF", "RegNetX-32GF"]:
        assert generate_stages(zoo_params(name), "half_up") == generate_stages(zoo_params(name)), name
    # 4.0GF (no torchvision builder): 96 -> 80 falls below 0.9 * 96, so the half-up rule bumps it to 120
    assert generate_stages(zoo_params("RegNetX-4.0GF"), "half_up").widths[0] == 120


def test_mmdet_arch_settings_widths():
    expected = {"regnetx_400mf": [32, 64, 160, 384], "regnetx_800mf": [64, 128, 288, 672],
                "regnetx_1.6gf": [72, 168, 408, 912], "regnetx_3.2gf": [96, 192, 432, 1008],
                "regnetx_4.0gf": [80, 240, 560, 1360], "regnetx_6.4gf": [168, 392, 784, 1624],
                "regnetx_8.0gf": [80, 240, 720, 1920], "regnetx_12gf": [224, 448, 896, 2240]}
    for name, widths in expected.items():
        assert list(generate_stages(zoo_params(name)).widths) == widths
    assert generate_stages(zoo_params("regnetx_8.0gf")).group_widths == (80, 120, 120, 120)


def test_names_and_errors():
    assert zoo_entry("regnetx_400mf") is zoo_entry("RegNetX-400MF") is zoo_entry("regnetx-400MF")
    assert zoo_entry("regnetx_4gf").name == "RegNetX-4.0GF"
    assert zoo_entry("RegNetY-1.6GF").mmdet_name == "regnety_1.6gf"
    assert len(ZOO) == 24
    with pytest.raises(RegNetExploreError, match="unknown RegNet arch 'regnetx_500mf'.*RegNetX-400MF"):
        zoo_entry("regnetx_500mf")
    with pytest.raises(RegNetExploreError, match="w0 must be a multiple of q=8"):
        RegNetParams(depth=22, w0=25, wa=24.48, wm=2.54, group_w=16)
    with pytest.raises(RegNetExploreError, match="wm must be > 1"):
        RegNetParams(depth=22, w0=24, wa=24.48, wm=1.0, group_w=16)


def test_design_space_violations():
    assert design_space_violations(zoo_params("RegNetX-400MF")) == []
    bad = design_space_violations(RegNetParams(depth=40, w0=24, wa=24.48, wm=1.8, group_w=16, bot_mul=2))
    assert any("depth 40" in v for v in bad) and any("wm 1.8" in v for v in bad) and any("bot_mul" in v for v in bad)
