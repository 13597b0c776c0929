"""Width fit (paper section 3.3): exact on every zoo model and sampled RegNet, > 0 elsewhere, deterministic."""

from __future__ import annotations

import math

import pytest
import torch

from regnet_explore.analysis.fit import (
    WidthFit,
    fit_block_widths,
    fit_checkpoint,
    fit_error,
    fit_stages,
    stage_to_block_widths,
)
from regnet_explore.analysis.sampling import sample_space
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import to_pycls_checkpoint
from regnet_explore.regnet.design import RegNetParams, RegNetStages, block_widths, generate_stages
from regnet_explore.regnet.zoo import ZOO, zoo_params

RESNET50 = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_widths_fit_exactly_and_regenerate_the_network(name):
    p = ZOO[name].params
    zoo = generate_stages(p)
    blocks = stage_to_block_widths(zoo.pre_adjust_widths, zoo.depths)
    assert blocks == list(block_widths(p.depth, p.w0, p.wa, p.wm).quantized)
    fit = fit_block_widths(blocks)
    assert fit.fit_error == 0 and list(fit.widths) == blocks and fit.depth == p.depth and fit.w0 == p.w0
    again = generate_stages(fit.params(p.group_w, p.bot_mul, p.se_ratio))
    assert (again.widths, again.depths, again.group_widths) == (zoo.widths, zoo.depths, zoo.group_widths)
    assert fit_stages(zoo) == fit


def test_sampled_regnets_fit_exactly():
    for s in sample_space("regnetx", 4, seed=5).samples:
        fit = fit_stages(s.stages)
        assert fit.fit_error == 0
        assert generate_stages(fit.params(s.params["group_w"])) == s.stages


def test_resnet50_is_not_a_regnet():
    fit = fit_block_widths(RESNET50)
    assert fit.fit_error > 0 and fit.depth == 16 and fit.w0 == 256
    assert fit.fit_error == pytest.approx(fit_error(fit.widths, RESNET50))
    # with exact stage widths (wm = 2) every wa moves at least two blocks to a neighbouring stage (factor 2 off)
    assert fit.fit_error <= 2 * math.log(2) / 16 + 1e-12


def test_arbitrary_sequence_positive_error_and_deterministic():
    widths = [16, 24, 200, 40, 512, 512, 96]
    fit = fit_block_widths(widths)
    assert fit.fit_error > 0 and len(fit.widths) == 7
    assert fit_block_widths(widths) == fit
    assert fit_block_widths(RESNET50) == fit_block_widths(tuple(RESNET50))


def test_fit_error_definition():
    assert fit_error([8, 16], [8, 16]) == 0
    assert fit_error([16, 8], [8, 16]) == pytest.approx(math.log(2))  # absolute log-ratios do not cancel


def test_stages_without_pre_adjust_widths_use_the_built_widths():
    st = generate_stages(zoo_params("RegNetX-400MF"))
    built = RegNetStages(st.widths, st.depths, st.group_widths, st.bot_muls)
    assert fit_stages(built) == fit_block_widths(stage_to_block_widths(st.widths, st.depths))


def test_width_fit_params():
    fit = WidthFit(w0=24, wa=24.48, wm=2.54, depth=22, q=8, fit_error=0.0, widths=())
    assert fit.params(16) == zoo_params("RegNetX-400MF")
    assert fit.params(16, 0.5, 0.25) == RegNetParams(22, 24, 24.48, 2.54, 16, 0.5, 0.25)


def test_fit_checkpoint(tmp_path):
    model = RegNet("regnetx_400mf")
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    fit = fit_checkpoint(tmp_path / "bare.pth")
    st = generate_stages(zoo_params("regnetx_400mf"))
    # weights only carry the adjusted widths (32, 64, 160, 384): that is what gets fitted
    assert fit == fit_block_widths(stage_to_block_widths(st.widths, st.depths)) and fit.depth == 22
    assert generate_stages(fit.params(16)) == st
    torch.save({"state_dict": {f"pts_backbone.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "det.pth")
    torch.save(to_pycls_checkpoint(model), tmp_path / "pycls.pyth")
    assert fit_checkpoint(tmp_path / "det.pth") == fit == fit_checkpoint(tmp_path / "pycls.pyth")


def test_fit_checkpoint_without_backbone(tmp_path):
    torch.save({"state_dict": {"head.weight": torch.zeros(2)}}, tmp_path / "x.pth")
    with pytest.raises(RegNetExploreError, match="no RegNet backbone"):
        fit_checkpoint(tmp_path / "x.pth")


@pytest.mark.parametrize("widths", [[], [8, 0, 16], [8.0, float("nan")]])
def test_bad_widths_raise(widths):
    with pytest.raises(RegNetExploreError, match="cannot fit widths"):
        fit_block_widths(widths)


def test_stage_to_block_widths():
    assert stage_to_block_widths([24, 64], [1, 2]) == [24, 64, 64]
    with pytest.raises(RegNetExploreError, match="same length"):
        stage_to_block_widths([24, 64], [1])
