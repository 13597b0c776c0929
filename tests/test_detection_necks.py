"""SECOND backbone, FPN and SECONDFPN: mmdet/mmdet3d key layout, shapes, data flow and complexity."""

import torch
import torch.nn.functional as F

from regnet_explore.detection.necks import FPN, SECONDFPN
from regnet_explore.detection.second import SECOND
from regnet_explore.regnet.complexity import Complexity


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_second_keys_shapes_and_strides():
    net = SECOND(64, (64, 128, 256), (3, 5, 5), (2, 2, 2)).eval()
    sd = net.state_dict()
    # Sequential of (conv, BN, ReLU) x (1 + layer_num): conv at 3k, BN at 3k + 1
    assert sd["blocks.0.0.weight"].shape == (64, 64, 3, 3)
    assert sd["blocks.0.1.running_var"].shape == (64,)
    assert sd["blocks.0.9.weight"].shape == (64, 64, 3, 3) and "blocks.0.12.weight" not in sd
    assert sd["blocks.1.0.weight"].shape == (128, 64, 3, 3) and sd["blocks.1.15.weight"].shape == (128, 128, 3, 3)
    assert sd["blocks.2.0.weight"].shape == (256, 128, 3, 3) and "blocks.2.18.weight" not in sd
    assert "blocks.0.0.bias" not in sd  # convs without bias
    assert len(sd) == (4 + 6 + 6) * 6  # convs (1) + BN (5) per layer
    bn = net.blocks[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    outs = net(torch.randn(1, 64, 64, 48))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 32, 24), (1, 128, 16, 12), (1, 256, 8, 6)]
    cx = Complexity(0, 0)
    assert SECOND.complexity(cx, [(64, 48)], 64, (64, 128, 256), (3, 5, 5), (2, 2, 2)) == [(32, 24), (16, 12), (8, 6)]
    assert cx.params == n_params(net)
    expected = sum(9 * ci * co * h * w for ci, co, h, w in
                   [(64, 64, 32, 24)] + [(64, 64, 32, 24)] * 3 + [(64, 128, 16, 12)] + [(128, 128, 16, 12)] * 5
                   + [(128, 256, 8, 6)] + [(256, 256, 8, 6)] * 5)
    assert cx.flops == expected


def test_fpn_keys_order_and_top_down_nearest_upsampling():
    fpn = FPN([64, 160, 384], 256).eval()
    keys = list(fpn.state_dict())
    assert keys[:7] == ["lateral_convs.0.conv.weight"] + [f"lateral_convs.0.bn.{k}" for k in (
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked")] + ["lateral_convs.1.conv.weight"]
    assert keys.index("fpn_convs.0.conv.weight") == 18
    assert fpn.state_dict()["fpn_convs.2.conv.weight"].shape == (256, 256, 3, 3)
    assert not any(k.endswith("conv.bias") for k in keys)
    # odd sizes: the upper level is resized to the lower level's exact size
    feats = [torch.randn(1, 64, 25, 25), torch.randn(1, 160, 13, 13), torch.randn(1, 384, 7, 7)]
    outs = fpn(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 256, 25, 25), (1, 256, 13, 13), (1, 256, 7, 7)]
    lat = [m(x) for m, x in zip(fpn.lateral_convs, feats, strict=True)]
    top = lat[2]
    mid = lat[1] + F.interpolate(top, size=(13, 13), mode="nearest")
    low = lat[0] + F.interpolate(mid, size=(25, 25), mode="nearest")
    torch.testing.assert_close(outs[0], fpn.fpn_convs[0](low))
    torch.testing.assert_close(outs[2], fpn.fpn_convs[2](top))
    cx = Complexity(0, 0)
    assert FPN.complexity(cx, [(25, 25), (13, 13), (7, 7)], [64, 160, 384], 256) == [(25, 25), (13, 13), (7, 7)]
    assert cx.params == n_params(fpn)
    assert cx.flops == sum((c * 256 + 9 * 256 * 256) * s * s for c, s in ((64, 25), (160, 13), (384, 7)))


def test_secondfpn_deconvs_and_concat():
    neck = SECONDFPN([64, 160, 384], [128, 128, 128], [1, 2, 4]).eval()
    sd = neck.state_dict()
    assert sd["deblocks.0.0.weight"].shape == (64, 128, 1, 1)
    assert sd["deblocks.1.0.weight"].shape == (160, 128, 2, 2)
    assert sd["deblocks.2.0.weight"].shape == (384, 128, 4, 4)
    assert sd["deblocks.2.1.weight"].shape == (128,) and "deblocks.0.0.bias" not in sd
    feats = [torch.randn(2, 64, 20, 20), torch.randn(2, 160, 10, 10), torch.randn(2, 384, 5, 5)]
    (out,) = neck(feats)
    assert out.shape == (2, 384, 20, 20)
    torch.testing.assert_close(out[:, 128:256], neck.deblocks[1](feats[1]))
    cx = Complexity(0, 0)
    assert SECONDFPN.complexity(cx, [(20, 20), (10, 10), (5, 5)], [64, 160, 384], [128, 128, 128], [1, 2, 4]) == [
        (20, 20)]
    assert cx.params == n_params(neck)
    assert cx.flops == 64 * 128 * 400 + 160 * 128 * 4 * 100 + 384 * 128 * 16 * 25


def test_complexity_takes_the_constructor_arguments():
    """pycls style: the arguments that build a module cost it, without building it."""
    two_levels = [(20, 12), (10, 6)]
    cases = [(SECOND, dict(in_channels=32, out_channels=(32, 64), layer_nums=(1, 2), layer_strides=(1, 2)), [(20, 12)]),
             (FPN, dict(in_channels=(32, 64), out_channels=48), two_levels),
             (SECONDFPN, dict(in_channels=(32, 64), out_channels=(16, 16), upsample_strides=(1, 2)), two_levels)]
    for cls, kwargs, sizes in cases:
        cx = Complexity(0, 0)
        cls.complexity(cx, sizes, **kwargs)
        assert cx.params == n_params(cls(**kwargs)), cls.__name__
