"""Design-space figures and tables show the package's numbers, and the explorer redraws in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnet_explore.analysis.sampling import IMAGENET, POINTPILLARS_NUS
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, regnet_complexity
from regnet_explore.regnet.design import RegNetParams, RegNetStages, block_widths, generate_stages
from regnet_explore.regnet.pitfall import paper_rounded
from regnet_explore.regnet.zoo import ZOO, zoo_params
from regnet_explore.viz.arch_explorer import ArchExplorer
from regnet_explore.viz.design_space import (
    ADJUSTED,
    CONTINUOUS,
    QUANTIZED,
    block_width_figure,
    complexity_table,
    pitfall_figure,
    pitfall_frame,
    pitfall_view,
    rounding_frame,
    stage_table,
    zoo_figure,
    zoo_table,
)

THREE_STAGES = RegNetParams(depth=22, w0=24, wa=8, wm=2.54, group_w=16)
ARCHS = [zoo_params("RegNetX-400MF"), zoo_params("RegNetX-8.0GF"), zoo_params("RegNetY-1.6GF"), THREE_STAGES]


def ys(trace) -> list:
    return [float(v) for v in trace.y]


@pytest.mark.parametrize("params", ARCHS, ids=lambda p: f"d{p.depth}-w0{p.w0}-wa{p.wa}-wm{p.wm}")
def test_block_width_figure_traces_are_the_design_rule(params):
    fig = block_width_figure(params)
    blocks, stages = block_widths(params.depth, params.w0, params.wa, params.wm), generate_stages(params)
    assert len(fig.data) == 3
    assert ys(fig.data[QUANTIZED]) == blocks.quantized.tolist()
    assert list(fig.data[QUANTIZED].customdata) == blocks.exponents.tolist()
    assert np.allclose(ys(fig.data[CONTINUOUS]), blocks.continuous)
    assert ys(fig.data[ADJUSTED]) == [w for w, d in zip(stages.widths, stages.depths) for _ in range(d)]
    bands = fig.layout.shapes
    assert len(bands) == len(fig.layout.annotations) == stages.num_stages
    assert [(b.x0 + 0.5, b.x1 - 0.5) for b in bands] == [
        (sum(stages.depths[:i]), sum(stages.depths[:i + 1]) - 1) for i in range(stages.num_stages)]
    assert fig.layout.annotations[0].text == f"s1: {stages.widths[0]}×{stages.depths[0]}"


def test_rounding_changes_the_adjusted_trace_only():
    params = zoo_params("RegNetX-400MF")
    bankers, half_up = block_width_figure(params), block_width_figure(params, rounding="half_up")
    assert ys(bankers.data[QUANTIZED]) == ys(half_up.data[QUANTIZED])
    assert ys(bankers.data[ADJUSTED])[-1] == 384 and ys(half_up.data[ADJUSTED])[-1] == 400
    with pytest.raises(RegNetExploreError, match="rounding"):
        block_width_figure(params, rounding="up")


@pytest.mark.parametrize("params", ARCHS, ids=lambda p: f"d{p.depth}-wa{p.wa}")
def test_stage_table_has_one_row_per_stage(params):
    st = generate_stages(params)
    table = stage_table(params)
    assert len(table) == st.num_stages
    assert table["width"].tolist() == list(st.widths) and table["depth"].tolist() == list(st.depths)
    assert table["quantized_w"].tolist() == list(st.pre_adjust_widths)
    assert (table["groups"] * table["group_w"] == table["bottleneck_w"]).all()
    assert table["layer"].tolist() == [f"layer{i + 1}" for i in range(st.num_stages)]
    last = int(table["blocks"].iloc[-1].split("-")[-1])
    assert last == params.depth - 1


def test_stage_table_takes_names_and_explicit_stages():
    by_name = stage_table("regnetx_1.6gf")
    assert by_name["width"].tolist() == list(generate_stages(zoo_params("RegNetX-1.6GF")).widths)
    explicit = stage_table(RegNetStages((64, 128), (1, 2), (16, 16), (1.0, 1.0)))
    assert len(explicit) == 2 and explicit["quantized_w"].isna().all()
    assert explicit["blocks"].tolist() == ["0", "1-2"]


@pytest.mark.parametrize("name", ["RegNetX-400MF", "RegNetX-8.0GF", "RegNetY-800MF"])
def test_complexity_table(name):
    table = complexity_table(name).set_index("setting")
    ref = ZOO[name].reference
    imagenet = table.loc[IMAGENET.label]
    assert round(imagenet["GFLOPs"] * 1e9) == ref.flops and round(imagenet["params (M)"] * 1e6) == ref.params
    # the PointPillars body: every learnable tensor of the built no-stem backbone (pycls counts BN as 2 C)
    with torch.device("meta"):
        body = RegNet(name, stem=False, stem_channels=64, strides=(1, 2, 2, 2))
    pp = table.loc[POINTPILLARS_NUS.label]
    assert round(pp["params (M)"] * 1e6) == sum(p.numel() for p in body.parameters())
    assert pp["GFLOPs"] > imagenet["GFLOPs"]


def test_complexity_table_of_a_two_stage_network():
    # the PointPillars input strides its first stage 1 and any further stage 2, whatever the depth
    stages = RegNetStages((64, 128), (1, 2), (16, 16), (1.0, 1.0))
    pp = complexity_table(stages).set_index("setting").loc[POINTPILLARS_NUS.label]
    cx = regnet_complexity(stages, 400, in_channels=64, stem_channels=64, stem=False, strides=(1, 2), num_classes=0)
    assert round(pp["GFLOPs"] * 1e9) == cx["flops"] and round(pp["params (M)"] * 1e6) == cx["params"]


def test_zoo_table_and_figure():
    table = zoo_table()
    assert len(table) == len(ZOO) == 24 and table["matches_pycls"].all()
    fig = zoo_figure()
    assert [t.name for t in fig.data] == ["RegNetX", "RegNetY"]
    points = {name: (x, y) for t in fig.data for name, x, y in zip(t.customdata[:, 0], t.x, t.y)}
    assert set(points) == set(ZOO)
    for name, (x, y) in points.items():
        assert x == pytest.approx(ZOO[name].reference.flops / 1e9) and y == ZOO[name].reference.top1_err
    assert fig.layout.xaxis.type == "log"


def test_pitfall_figure_400mf_moves_block_9():
    fig = pitfall_figure("RegNetX-400MF")
    exact, rounded = generate_stages(zoo_params("RegNetX-400MF")), generate_stages(
        paper_rounded(zoo_params("RegNetX-400MF")))
    assert len(fig.data) == 3
    assert ys(fig.data[0]) == np.repeat(exact.widths, exact.depths).tolist()
    assert ys(fig.data[1]) == np.repeat(rounded.widths, rounded.depths).tolist()
    # depths 1,2,7,12 -> 1,2,6,13: block 1+2+6 = 9 leaves stage 3 (160) for stage 4 (384)
    assert list(fig.data[2].x) == [9] and ys(fig.data[2]) == [384]
    assert "depths [1, 2, 6, 13]" in fig.layout.title.text
    assert list(pitfall_figure("RegNetX-8.0GF").data[2].x) == []


def test_pitfall_frame():
    frame = pitfall_frame().set_index("name")
    assert len(frame) == 12
    assert set(frame.index[frame["key_diffs"] == 0]) == {"RegNetX-8.0GF", "RegNetX-16GF", "RegNetX-32GF"}
    assert set(frame.index[frame["stages_changed"]]) == {"RegNetX-6.4GF", "RegNetX-12GF"}
    assert frame.loc["RegNetX-400MF", "key_diffs"] == 30  # layer3.6.* and layer4.12.*: 2 blocks x 15 tensors
    assert frame.loc["RegNetX-400MF", "fpn_in_channels"] == [64, 160, 384]
    assert frame.loc["RegNetX-1.6GF", "fpn_in_channels"] == [168, 408, 912]
    assert frame.loc["RegNetX-1.6GF", "fpn_in_channels_rounded"] == [168, 384, 840]
    assert frame.loc["RegNetX-6.4GF", "fpn_in_channels_rounded"].startswith("none: 3 stages")
    view = pitfall_view(pitfall_frame())
    assert view.loc["400MF", "stages (width×depth)"] == "32×1 64×2 160×7 384×12"
    assert view.loc["400MF", "from the figure's values"] == "32×1 64×2 160×6 384×13"
    assert view.loc["6.4GF", "FPN in_channels"] == "392-784-1624 → none"
    assert view.loc["400MF", "wa → figure"] == "24.48 → 24.5" and view.loc["400MF", "keys differing"] == 30
    assert not any(isinstance(v, list) for v in view.to_numpy().ravel())


def test_rounding_frame():
    frame = rounding_frame("RegNetX").set_index("name")
    assert frame.loc["RegNetX-400MF", "bankers"] == [32, 64, 160, 384]
    assert frame.loc["RegNetX-400MF", "half_up"] == [32, 64, 160, 400]
    # 4.0GF: 96 / 40 = 2.4 -> 80, under 90 % of 96, so torchvision's rule adds a group: 120
    assert set(frame.index[frame["differs"]]) == {"RegNetX-400MF", "RegNetX-4.0GF"}
    assert len(rounding_frame()) == 24


# ---- the widget: driven through slider values, as the browser would ----

@pytest.fixture
def explorer():
    pytest.importorskip("ipywidgets")  # the notebooks extra

    return ArchExplorer("RegNetX-400MF")


def test_explorer_starts_on_the_zoo_model(explorer):
    assert explorer.zoo.value == "RegNetX-400MF"
    assert {k: s.value for k, s in explorer.sliders.items()} == {
        "depth": 22, "w0": 24, "wa": 24.48, "wm": 2.54, "group_w": 16, "bot_mul": 1.0}
    assert ys(explorer.figure.data[QUANTIZED]) == block_widths(22, 24, 24.48, 2.54).quantized.tolist()
    assert "inside" in explorer.warning.value and explorer.status == "inside the RegNetX design space"


def test_typed_wm_moves_its_slider_and_redraws(explorer):
    """The text box beside wm: 2.54 -> 2.5 typed (the pitfall of notebook 02), the slider and the figure follow."""
    assert explorer.texts["wm"].value == 2.54 and explorer.texts["wa"].value == 24.48
    explorer.texts["wm"].value = 2.5
    assert explorer.sliders["wm"].value == 2.5
    assert ys(explorer.figure.data[QUANTIZED]) == block_widths(22, 24, 24.48, 2.5).quantized.tolist()
    explorer.zoo.value = "RegNetX-800MF"
    assert explorer.texts["wm"].value == zoo_params("RegNetX-800MF").wm


def test_slider_change_updates_figure_in_place_and_table(explorer):
    fig, trace = explorer.figure, explorer.figure.data[QUANTIZED]
    table_before = explorer.table.value
    explorer.sliders["wm"].value = 2.5
    assert explorer.figure is fig and fig.data[QUANTIZED] is trace
    assert ys(trace) == block_widths(22, 24, 24.48, 2.5).quantized.tolist()
    assert explorer.table.value != table_before
    assert explorer.table.value == stage_table(RegNetParams(22, 24, 24.48, 2.5, 16)).to_html(index=False)
    assert "depths [1, 2, 6, 13]" in fig.layout.title.text
    assert explorer.zoo.value == "(custom)"
    explorer.sliders["wa"].value = 8
    assert len(fig.layout.shapes) == 3
    assert "3 stages instead of 4" in explorer.warning.value
    assert explorer.status.startswith("outside the RegNetX design space: ") and "<" not in explorer.status
    explorer.sliders["depth"].value = 40
    assert len(trace.y) == 40 and "depth 40 outside 12..28" in explorer.warning.value


def test_zoo_dropdown_sets_sliders(explorer):
    explorer.zoo.value = "RegNetY-1.6GF"
    p = zoo_params("RegNetY-1.6GF")
    assert {k: s.value for k, s in explorer.sliders.items()} == {
        "depth": p.depth, "w0": p.w0, "wa": p.wa, "wm": p.wm, "group_w": p.group_w, "bot_mul": p.bot_mul}
    assert explorer.se.value and explorer.params == p
    assert ys(explorer.figure.data[QUANTIZED]) == block_widths(p.depth, p.w0, p.wa, p.wm).quantized.tolist()
    assert "RegNetY" in explorer.warning.value
    explorer.se.value = False
    assert explorer.zoo.value == "(custom)"
    explorer.sliders["group_w"].value = 16
    explorer.sliders["depth"].value = 22
    explorer.sliders["w0"].value = 24
    explorer.sliders["wm"].value = 2.54
    explorer.sliders["wa"].value = 24.48
    assert explorer.zoo.value == "RegNetX-400MF"  # matching parameters find the zoo name again


def test_rounding_toggle_and_invalid_values(explorer):
    explorer.rounding.value = "half_up"
    assert ys(explorer.figure.data[ADJUSTED])[-1] == 400
    assert "400" in explorer.table.value
    before = ys(explorer.figure.data[QUANTIZED])
    explorer.sliders["w0"].value = 12  # only reachable from code: the slider steps by 8
    assert "multiple of q=8" in explorer.warning.value
    assert ys(explorer.figure.data[QUANTIZED]) == before
    explorer.set_params(zoo_params("RegNetX-1.6GF"))
    assert explorer.zoo.value == "RegNetX-1.6GF"
    assert ys(explorer.figure.data[ADJUSTED])[-1] == 912
