"""Anchor head: mmdet3d key names and shapes, init, channel layout through decoding, predict() and complexity."""

from __future__ import annotations

import math

import pytest
import torch

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.boxes import limit_period
from regnet_explore.detection.configs import LYFT_CLASSES, NUSCENES_CLASSES
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.head import AnchorHead, HeadTestConfig
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.complexity import Complexity

from .helpers import NUS_FPN, NUS_SECFPN, read_keys

NAMES10 = NUSCENES_CLASSES

FPN_SIZES = [[2.5981, 0.8660, 1], [1.7321, 0.5774, 1], [1, 1, 1], [0.4, 0.4, 1]]
LYFT_FPN = AnchorConfig(ranges=[[-80, -80, -1.8, 80, 80, -1.8]], sizes=FPN_SIZES, rotations=[0, 1.57],
                        scales=[1, 2, 4])
LYFT_SECFPN_Z = [-1.0715024, -0.3033737, -0.3519405, -0.8871424, -0.6276341, -1.3220503, -1.0709302, -0.9122268,
                 -1.8012227]
LYFT_SECFPN = AnchorConfig(
    ranges=[[-80, -80, z, 80, 80, z] for z in LYFT_SECFPN_Z],
    sizes=[[4.75, 1.92, 1.71], [10.24, 2.84, 3.44], [12.70, 2.92, 3.42], [6.52, 2.42, 2.34], [8.17, 2.75, 3.20],
           [2.35, 0.96, 1.59], [1.76, 0.63, 1.44], [0.80, 0.76, 1.76], [0.73, 0.35, 0.50]],
    rotations=[0, 1.57])


def head_keys(head: AnchorHead) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"pts_bbox_head.{k}", tuple(v.shape)) for k, v in head.state_dict().items()]


def reference_head_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, s) for k, s in read_keys(name) if k.startswith("pts_bbox_head.")]


@pytest.mark.parametrize("name, head", [
    ("mmdet3d_hv_pointpillars_regnet-400mf_fpn_sbn-all_nus-3d.keys", lambda: AnchorHead(10, 256, NUS_FPN, 9)),
    ("mmdet3d_hv_pointpillars_regnet-400mf_secfpn_sbn-all_nus-3d.keys",
     lambda: AnchorHead(10, 384, NUS_SECFPN, 9)),
    ("mmdet3d_hv_pointpillars_regnet-400mf_fpn_sbn-all_lyft-3d.keys", lambda: AnchorHead(9, 256, LYFT_FPN, 7)),
])
def test_keys_and_shapes_match_mmdet3d(name, head):
    assert head_keys(head()) == reference_head_keys(name)


def test_lyft_secfpn_shapes_from_the_facts():
    # reference-facts 5: conv_cls [162,384,1,1] (18 x 9), conv_reg [126,384,1,1], conv_dir_cls [36,384,1,1]
    head = AnchorHead(9, 384, LYFT_SECFPN, 7)
    assert head_keys(head) == [
        ("pts_bbox_head.conv_cls.weight", (162, 384, 1, 1)), ("pts_bbox_head.conv_cls.bias", (162,)),
        ("pts_bbox_head.conv_reg.weight", (126, 384, 1, 1)), ("pts_bbox_head.conv_reg.bias", (126,)),
        ("pts_bbox_head.conv_dir_cls.weight", (36, 384, 1, 1)), ("pts_bbox_head.conv_dir_cls.bias", (36,))]


def test_code_size_must_match_the_anchors():
    with pytest.raises(RegNetExploreError, match="code_size 7"):
        AnchorHead(10, 256, NUS_FPN, 7)


def test_init_follows_mmdet3d():
    torch.manual_seed(0)
    head = AnchorHead(10, 384, NUS_SECFPN, 9)
    assert torch.allclose(head.conv_cls.bias, torch.full((140,), -math.log(99)))
    assert torch.all(head.conv_reg.bias == 0) and torch.all(head.conv_dir_cls.bias == 0)
    for conv in (head.conv_cls, head.conv_reg, head.conv_dir_cls):
        assert abs(float(conv.weight.detach().std()) - 0.01) < 0.001
        assert abs(float(conv.weight.detach().mean())) < 0.001


def test_forward_shapes_per_level():
    head = AnchorHead(10, 256, NUS_FPN, 9)
    feats = [torch.randn(2, 256, s, s) for s in (16, 8, 4)]
    cls, reg, dirs = head(feats)
    assert [tuple(t.shape) for t in cls] == [(2, 80, s, s) for s in (16, 8, 4)]
    assert [tuple(t.shape) for t in reg] == [(2, 72, s, s) for s in (16, 8, 4)]
    assert [tuple(t.shape) for t in dirs] == [(2, 16, s, s) for s in (16, 8, 4)]


def one_hot_outputs(head: AnchorHead, sizes, level: int, y: int, x: int, anchor: int, label: int, dir_bin: int):
    """Head outputs where exactly one anchor scores (logit 5 for ``label``) and every delta is zero."""
    cls = [torch.full((1, head.num_anchors * head.num_classes, h, w), -20.0) for h, w in sizes]
    reg = [torch.zeros(1, head.num_anchors * head.code_size, h, w) for h, w in sizes]
    dirs = [torch.zeros(1, head.num_anchors * 2, h, w) for h, w in sizes]
    cls[level][0, anchor * head.num_classes + label, y, x] = 5.0
    dirs[level][0, anchor * 2 + dir_bin, y, x] = 1.0
    return cls, reg, dirs


@pytest.mark.parametrize("dir_bin", [0, 1])
def test_channel_layout_through_decoding(dir_bin):
    head = AnchorHead(10, 256, NUS_FPN, 9)
    sizes = [(40, 40), (20, 20), (10, 10)]
    # level 1 (scale 2, 100 m over 20 cells), location y=3, x=11, size index 2, rotation index 1, class 7
    out = one_hot_outputs(head, sizes, level=1, y=3, x=11, anchor=2 * 2 + 1, label=7, dir_bin=dir_bin)
    (result,) = head.decode(*out, HeadTestConfig(), NAMES10)
    assert result.labels.tolist() == [7]
    assert result.scores.tolist() == pytest.approx([1 / (1 + math.exp(-5))])
    yaw = float(limit_period(torch.tensor(1.57 + math.pi / 4), 0.0, math.pi)) - math.pi / 4 + math.pi * dir_bin
    expected = [-50 + 2.5 + 11 * 5, -50 + 2.5 + 3 * 5, -1.8, 2.0, 2.0, 2.0, yaw, 0.0, 0.0]
    torch.testing.assert_close(result.boxes, torch.tensor([expected]), atol=1e-5, rtol=0)


def test_legacy_weights_decode_into_the_current_convention():
    head = AnchorHead(10, 256, NUS_FPN, 9, legacy=True)
    assert head.dir_offset == pytest.approx(0.7854)
    sizes = [(40, 40), (20, 20), (10, 10)]
    # level 0 (cell 2.5 m), size index 0 (l=2.5981, w=0.8660 -> legacy anchor (w, l, h)), rotation 0, bin 0
    out = one_hot_outputs(head, sizes, level=0, y=0, x=0, anchor=0, label=0, dir_bin=0)
    (result,) = head.decode(*out, HeadTestConfig(), NAMES10)
    # legacy yaw: limit_period(0 - 0.7854, 0, pi) + 0.7854 = pi; current yaw = -pi - pi/2 -> pi/2 in [-pi, pi)
    expected = [-48.75, -48.75, -1.8, 2.5981, 0.8660, 1.0, math.pi / 2, 0.0, 0.0]
    torch.testing.assert_close(result.boxes, torch.tensor([expected]), atol=1e-4, rtol=0)


def test_decode_smoke_on_random_features():
    torch.manual_seed(0)
    head = AnchorHead(10, 64, NUS_FPN, 9).eval()
    feats = [torch.randn(2, 64, s, s) for s in (40, 20, 10)]
    with torch.no_grad():
        cls, reg, dirs = head(feats)
        cls = [c + 4.0 for c in cls]  # an untrained head scores ~0.01; lift it above score_thr
        cfg = HeadTestConfig(nms_pre=300, max_num=100)
        results = head.decode(cls, reg, dirs, cfg, NAMES10)
        singles = [head.decode([c[k:k + 1] for c in cls], [r[k:k + 1] for r in reg], [d[k:k + 1] for d in dirs],
                               cfg, NAMES10)[0] for k in range(2)]
    assert len(results) == 2
    for result, single in zip(results, singles, strict=True):
        assert isinstance(result, Detections) and result.class_names == NAMES10
        count = len(result.scores)
        assert 0 < count <= cfg.max_num
        assert result.boxes.shape == (count, 9) and result.boxes.dtype == torch.float32
        assert torch.all(result.scores > cfg.score_thr) and torch.all(result.scores <= 1)
        assert torch.all((result.labels >= 0) & (result.labels < 10))
        assert torch.all(result.boxes[:, 3:6] > 0)
        assert torch.all(result.boxes[:, 6] >= -math.pi / 4 - 1e-6)
        assert torch.all(result.boxes[:, 6] < 7 * math.pi / 4 + 1e-6)
        for key in ("boxes", "scores", "labels"):  # the batch gives what each sample gives alone
            assert torch.equal(getattr(result, key), getattr(single, key))


def test_decode_under_autocast_runs_in_float32():
    torch.manual_seed(1)
    head = AnchorHead(9, 32, LYFT_FPN, 7).eval()
    feats = [torch.randn(1, 32, s, s) for s in (32, 16, 8)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cls, reg, dirs = head(feats)
        assert cls[0].dtype == torch.bfloat16
        (result,) = head.decode([c + 4.0 for c in cls], reg, dirs, HeadTestConfig(max_num=50), LYFT_CLASSES)
    assert result.boxes.dtype == torch.float32 and result.boxes.shape[1] == 7
    assert 0 < len(result.scores) <= 50


def test_anchors_are_cached_per_size_and_device():
    head = AnchorHead(10, 256, NUS_FPN, 9)
    first = head.anchors([(8, 8), (4, 4), (2, 2)], torch.device("cpu"))
    assert head.anchors([(8, 8), (4, 4), (2, 2)], torch.device("cpu")) is first
    assert head.anchors([(6, 6), (3, 3), (2, 2)], torch.device("cpu"))[0].shape == (6 * 6 * 8, 9)


def test_complexity_counts_three_1x1_convs_per_level():
    head = AnchorHead(10, 256, NUS_FPN, 9)
    cx = Complexity(200, 200)
    sizes = AnchorHead.complexity(cx, [(200, 200), (100, 100), (50, 50)], 10, 256, NUS_FPN, 9)
    assert sizes == [(200, 200), (100, 100), (50, 50)]
    params = sum(p.numel() for p in head.parameters())
    assert params == 43_176  # reference-facts 5
    assert cx.params == params
    outputs = 80 + 72 + 16
    assert cx.flops == sum(256 * outputs * n * n + outputs for n in (200, 100, 50))
    assert cx.acts == sum(outputs * n * n for n in (200, 100, 50))
    assert (cx.h, cx.w) == (200, 200)
    single = Complexity(50, 50)
    AnchorHead.complexity(single, [(50, 50)], 10, 256, NUS_FPN, 9)
    assert single.flops == 256 * outputs * 2500 + outputs
