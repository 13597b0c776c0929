"""The RegNet backbone: mmdet key layout, NoStemRegNet, outputs, freezing, norms."""

from __future__ import annotations

import pytest
import torch

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet, out_channels, regnet_complexity
from regnet_explore.regnet.complexity import Complexity
from regnet_explore.regnet.design import RegNetParams

from .helpers import read_keys


def test_keys_and_shapes_equal_mmdet_regnetx_400mf():
    ref = read_keys("mmdet_regnetx_400mf.keys")
    sd = RegNet("regnetx_400mf").state_dict()
    assert len(sd) == 426
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == ref


def test_nostem_backbone_equals_mmdet3d_pts_backbone():
    ref = [(k.removeprefix("pts_backbone."), s)
           for k, s in read_keys("mmdet3d_hv_pointpillars_regnet-400mf_fpn_sbn-all_nus-3d.keys")
           if k.startswith("pts_backbone.")]
    model = RegNet("regnetx_400mf", stem=False, stem_channels=64, strides=(1, 2, 2, 2), out_indices=(1, 2, 3),
                   norm="SyncBN", norm_eps=1e-3, norm_momentum=0.01, norm_eval=False)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == ref
    assert sum(p.numel() for p in model.parameters()) == 4_773_632
    assert model.out_channels == out_channels("regnetx_400mf", (1, 2, 3)) == [64, 160, 384]
    model.eval()
    outs = model(torch.randn(1, 64, 64, 48))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 32, 24), (1, 160, 16, 12), (1, 384, 8, 6)]


def test_1_6gf_fpn_in_channels_and_layer1_input():
    assert out_channels("regnetx_1.6gf", (1, 2, 3)) == [168, 408, 912]
    model = RegNet("regnetx_1.6gf", stem=False, stem_channels=64, strides=(1, 2, 2, 2))
    sd = model.state_dict()
    assert tuple(sd["layer1.0.conv1.weight"].shape) == (72, 64, 1, 1)
    assert tuple(sd["layer1.0.downsample.0.weight"].shape) == (72, 64, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == 8_280_816


def test_regnety_squeeze_excitation_keys():
    sd = RegNet("RegNetY-400MF").state_dict()
    # w_se = round(block input width * 0.25): layer1.0 gets the 32-wide stem output
    assert tuple(sd["layer1.0.se.conv1.weight"].shape) == (8, 48, 1, 1)
    assert tuple(sd["layer2.1.se.conv1.weight"].shape) == (26, 104, 1, 1)
    assert tuple(sd["layer2.1.se.conv2.bias"].shape) == (104,)
    assert not any(".se." in k for k in RegNet("RegNetX-400MF").state_dict())


def test_frozen_stages_and_norm_eval():
    model = RegNet("regnetx_400mf", frozen_stages=2, norm_eval=False)
    model.train()
    assert not model.conv1.weight.requires_grad and not model.layer2[1].conv2.weight.requires_grad
    assert model.layer3[0].conv1.weight.requires_grad
    assert not model.layer1[0].bn1.training and model.layer3[0].bn1.training
    model = RegNet("regnetx_400mf", norm_eval=True).train()
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_zero_init_residual_and_syncbn():
    assert torch.all(RegNet("regnetx_400mf").layer4[0].bn3.weight == 0)
    assert torch.all(RegNet("regnetx_400mf", zero_init_residual=False).layer4[0].bn3.weight == 1)
    sync = RegNet("regnetx_400mf", norm="SyncBN", norm_eps=1e-3, norm_momentum=0.01)
    assert isinstance(sync.layer1[0].bn1, torch.nn.SyncBatchNorm) and sync.layer1[0].bn1.eps == 1e-3
    assert list(sync.state_dict()) == list(RegNet("regnetx_400mf").state_dict())
    sync.train()(torch.randn(2, 3, 32, 32))  # not distributed: behaves as plain BN


def test_dilation_keeps_resolution():
    model = RegNet("regnetx_400mf", strides=(2, 2, 2, 1), dilations=(1, 1, 1, 2)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert outs[-1].shape[-1] == outs[-2].shape[-1] == 4


def test_arch_dict_and_errors():
    model = RegNet(dict(w0=24, wa=24.48, wm=2.54, group_w=16, depth=22, bot_mul=1.0))
    assert model.stages.widths == (32, 64, 160, 384)
    with pytest.raises(RegNetExploreError, match="3 stages.*strides has 4"):
        RegNet(RegNetParams(depth=17, w0=184, wa=60.83, wm=2.1, group_w=56), strides=(2, 2, 2, 2))
    with pytest.raises(RegNetExploreError, match="out_indices"):
        RegNet("regnetx_400mf", out_indices=(4,))
    with pytest.raises(RegNetExploreError, match="unknown keys in arch dict"):
        RegNet(dict(w0=24, wa=24.48, wm=2.54, group_w=16, depth=22, width=3))
    with pytest.raises(RegNetExploreError, match="no classifier"):
        RegNet("regnetx_400mf").classify(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("kwargs", [
    dict(arch="regnetx_400mf", stem=False, stem_channels=64, strides=(1, 2, 2, 2), out_indices=(1, 2, 3),
         norm="SyncBN", norm_eps=1e-3, norm_momentum=0.01, norm_eval=False),
    dict(arch="RegNetY-200MF", num_classes=10, strides=(2, 2, 2, 1), dilations=(1, 1, 1, 2), frozen_stages=1),
])
def test_static_complexity_takes_the_constructor_arguments(kwargs):
    """pycls style: the arguments that build the network cost it, without building it."""
    cx = Complexity(0, 0)
    sizes = RegNet.complexity(cx, [(64, 48)], **kwargs)
    model = RegNet(**kwargs).eval()
    assert cx.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        outs = model(torch.randn(1, model.in_channels if model.has_stem else model.stem_channels, 64, 48))
    assert sizes == [tuple(o.shape[-2:]) for o in outs]


def test_regnet_complexity_is_the_static_complexity_of_the_classifier():
    cx = Complexity(0, 0)
    RegNet.complexity(cx, [(224, 224)], "regnetx_400mf", num_classes=1000)
    assert cx.summary() == regnet_complexity("regnetx_400mf") == {"flops": 397_678_568, "params": 5_157_512,
                                                                  "acts": 3_143_272}  # pycls's zoo figures
