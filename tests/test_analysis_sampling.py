"""Design-space samplers: seeded streams, each space's constraints, complexity windows and buildable networks."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from regnet_explore.analysis.sampling import (
    ANYNET_WIDTHS,
    GROUP_WIDTHS,
    IMAGENET,
    POINTPILLARS_NUS,
    REJECT_REASONS,
    SPACES,
    BackboneInput,
    _pick_nondecreasing,
    sample_space,
)
from regnet_explore.detection.configs import get_config
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, regnet_complexity
from regnet_explore.regnet.design import RegNetParams, generate_stages

ANYNET = [s for s in SPACES if s.startswith("anynet")]
REGNET = ["regnetx", "regnety"]


def _nondecreasing(seq) -> bool:
    return all(a <= b for a, b in zip(seq, seq[1:]))


def _added_up(report) -> bool:
    return report.drawn == len(report.samples) + sum(report.rejected.values())


@pytest.mark.parametrize("space", SPACES)
def test_same_seed_same_samples_and_prefix_stable(space):
    long = sample_space(space, 8, seed=3)
    assert sample_space(space, 8, seed=3) == long
    assert sample_space(space, 3, seed=3).samples == long.samples[:3]
    assert [s.index for s in long.samples] == list(range(8))
    assert [s.stages for s in sample_space(space, 8, seed=4).samples] != [s.stages for s in long.samples]


def test_prefix_stable_with_rejections():
    window = dict(flops=(2e8, 8e8), params=(1e6, 1e7))
    long = sample_space("regnetx", 6, seed=1, **window)
    short = sample_space("regnetx", 2, seed=1, **window)
    assert short.samples == long.samples[:2] and short.drawn < long.drawn


@pytest.mark.parametrize("space", ANYNET)
def test_anynet_constraints(space):
    report = sample_space(space, 30, seed=0)
    assert report.drawn == 30 and _added_up(report)
    for s in report.samples:
        p, st = s.params, s.stages
        assert st.num_stages == 4 and all(len(v) == 4 for v in p.values())
        assert all(1 <= d <= 16 for d in p["depths"]) and list(st.depths) == p["depths"]
        assert all(w in ANYNET_WIDTHS for w in p["widths"]) and st.pre_adjust_widths == tuple(p["widths"])
        assert all(w % 8 == 0 and 8 <= w <= 1024 for w in st.widths)
        assert all(b in (1.0, 0.5, 0.25) for b in p["bot_muls"]) and list(st.bot_muls) == p["bot_muls"]
        assert all(g in GROUP_WIDTHS for g in p["group_widths"])
        assert all(g <= g0 for g, g0 in zip(st.group_widths, p["group_widths"]))
        assert all(wb % g == 0 for wb, g in zip(st.bottleneck_widths, st.group_widths))
        if space != "anynetxa":
            assert len(set(p["bot_muls"])) == 1
        if space in ("anynetxc", "anynetxd", "anynetxe"):
            assert len(set(p["group_widths"])) == 1
        if space in ("anynetxd", "anynetxe"):
            assert _nondecreasing(p["widths"]) and _nondecreasing(st.widths)
        if space == "anynetxe":
            assert _nondecreasing(p["depths"])
    # the looser spaces really use their freedom
    if space == "anynetxa":
        assert any(len(set(s.params["bot_muls"])) > 1 for s in report.samples)
    if space in ("anynetxa", "anynetxb"):
        assert any(len(set(s.params["group_widths"])) > 1 for s in report.samples)
    if space in ANYNET[:3]:
        assert not all(_nondecreasing(s.params["widths"]) for s in report.samples)


@pytest.mark.parametrize("space", REGNET)
def test_regnet_constraints(space):
    report = sample_space(space, 30, seed=0)
    assert _added_up(report) and report.rejected["stages"] > 0
    for s in report.samples:
        p = s.params
        assert 12 <= p["depth"] <= 28 and p["w0"] % 8 == 0 and 8 <= p["w0"] <= 256
        assert 8 <= p["wa"] <= 256 and 1.5 <= p["wm"] <= 3 and p["bot_mul"] == 1.0 and p["group_w"] in GROUP_WIDTHS
        assert p.get("se_ratio") == (0.25 if space == "regnety" else None)
        assert s.stages == generate_stages(RegNetParams(**p))
        assert s.stages.num_stages == 4 and s.stages.depth == p["depth"]
        assert all(wb % g == 0 for wb, g in zip(s.stages.bottleneck_widths, s.stages.group_widths))


def test_complexity_window_and_rejection_counts():
    report = sample_space("regnetx", 8, seed=2, flops=(3e8, 6e8), params=(2e6, 6e6))
    assert len(report.samples) == 8 and _added_up(report)
    assert set(report.rejected) == set(REJECT_REASONS)
    assert report.rejected["flops_low"] > 0 and report.rejected["flops_high"] > 0
    for s in report.samples:
        assert 3e8 <= s.flops <= 6e8 and 2e6 <= s.params_count <= 6e6
        cx = regnet_complexity(RegNetParams(**s.params))  # default probe = pycls ImageNet network
        assert (s.flops, s.params_count, s.acts) == (cx["flops"], cx["params"], cx["acts"])


def test_probe_is_used():
    s = sample_space("anynetxc", 1, seed=0, probe=POINTPILLARS_NUS).samples[0]
    cx = regnet_complexity(s.stages, 400, in_channels=64, stem_channels=64, stem=False, strides=(1, 2, 2, 2),
                           num_classes=0)
    assert (s.flops, s.params_count) == (cx["flops"], cx["params"])
    assert s.flops != IMAGENET.measure(s.stages)["flops"]


def test_backbone_input_of_a_detector():
    assert BackboneInput.of_detector(get_config("regnet-400mf-fpn-nus")) == POINTPILLARS_NUS
    lyft = BackboneInput.of_detector(get_config("regnet-400mf-fpn-lyft"), 128, 96)
    assert (lyft.height, lyft.width, lyft.in_channels, lyft.stem, lyft.strides) == (128, 96, 64, False, (1, 2, 2, 2))
    assert lyft.label == "PointPillars regnet-400mf-fpn-lyft BEV 128×96 (no stem, 64 ch)"
    with pytest.raises(RegNetExploreError, match="SECOND backbone"):
        BackboneInput.of_detector(get_config("fpn-nus"))


def test_stage_strides_extend_with_two():
    assert IMAGENET.stage_strides(3) == (2, 2, 2)
    assert POINTPILLARS_NUS.stage_strides(4) == (1, 2, 2, 2)
    assert POINTPILLARS_NUS.stage_strides(5) == (1, 2, 2, 2, 2) and POINTPILLARS_NUS.stage_strides(2) == (1, 2)


def test_duplicates_rejected():
    tiny = BackboneInput(height=8, stem=False, stem_channels=8, strides=(1,), num_classes=0)
    report = sample_space("anynetxa", 5, seed=0, num_stages=1, params=(0, 500), probe=tiny)
    assert report.rejected["duplicate"] >= 1 and _added_up(report)
    assert len({s.stages for s in report.samples}) == 5


def test_nondecreasing_draws_are_uniform():
    rng = np.random.default_rng(0)
    counts = Counter(tuple(_pick_nondecreasing(rng, (0, 1, 2), 2)) for _ in range(6000))
    assert set(counts) == {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)}
    assert all(800 < c < 1200 for c in counts.values())  # 1000 each; sorting iid draws would halve the ties


def test_to_dict_is_a_flat_json_row():
    for space in ("regnety", "anynetxe"):
        row = sample_space(space, 1, seed=0).samples[0].to_dict()
        assert json.loads(json.dumps(row)) == row
        assert row["space"] == space and row["index"] == 0 and isinstance(row["stage_widths"], list)
        assert {"flops", "params_count", "acts", "stage_depths", "stage_group_widths", "se_ratio"} <= set(row)


@pytest.mark.parametrize("kwargs, match", [
    (dict(space="regnetz", n=1), "unknown design space"),
    (dict(space="regnetx", n=-1), "n must be"),
    (dict(space="regnetx", n=1, seed=-2), "seed must be"),
    (dict(space="regnetx", n=1, flops=(5e8, 1e8)), "flops window"),
    (dict(space="regnetx", n=1, params=(-1, 1e6)), "params window"),
    (dict(space="regnetx", n=1, probe=POINTPILLARS_NUS, num_stages=3), "strides"),
    (dict(space="anynetxa", n=2, flops=(0, 1), max_draws=50), "max_draws"),
])
def test_bad_input_raises(kwargs, match):
    with pytest.raises(RegNetExploreError, match=match):
        sample_space(**kwargs)


def _measured(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """FLOPs (multiply-adds, + bias) and activations counted from the convs the forward pass runs (pycls rules)."""
    total = {"flops": 0, "acts": 0}

    def hook(m, inputs, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        per_out = k * m.in_channels // m.groups
        total["flops"] += out[0].numel() * per_out + (m.out_channels if m.bias is not None else 0)
        total["acts"] += out[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        outs = model(x)
    for h in handles:
        h.remove()
    total["outs"] = outs
    return total


@pytest.mark.parametrize("space", ["regnetx", "regnety", "anynetxe"])
def test_sampled_net_builds_and_matches_its_complexity(space):
    s = sample_space(space, 1, seed=0, params=(3e5, 2e6), probe=POINTPILLARS_NUS).samples[0]
    model = RegNet(arch=s.stages, stem=False, stem_channels=64, in_channels=64, strides=(1, 2, 2, 2),
                   out_indices=(1, 2, 3)).eval()
    assert sum(p.numel() for p in model.parameters()) == s.params_count
    probe = BackboneInput(height=32, in_channels=64, stem_channels=64, stem=False, strides=(1, 2, 2, 2),
                            num_classes=0)
    expected = probe.measure(s.stages)
    assert expected["params"] == s.params_count
    got = _measured(model, torch.zeros(1, 64, 32, 32))
    assert (got["flops"], got["acts"]) == (expected["flops"], expected["acts"])
    assert [o.shape[1] for o in got["outs"]] == list(s.stages.widths[1:])
    assert [o.shape[-1] for o in got["outs"]] == [16, 8, 4]
