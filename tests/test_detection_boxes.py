"""Box coder, direction bins, legacy conversion, corners and BEV IoUs (exact IoU checked against shapely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from regnet_explore.detection.boxes import (
    corners_3d,
    corners_bev,
    decode,
    decode_direction,
    direction_target,
    encode,
    legacy_to_current,
    limit_period,
    nearest_bev_iou,
    overlapping_pairs,
    rotated_bev_iou_aligned,
)

from .helpers import random_boxes, shapely_iou


def iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) rotated BEV IoU from the package's parts: the candidate pairs of ``overlapping_pairs``, each pair's
    exact IoU by ``rotated_bev_iou_aligned``, zero elsewhere."""
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.promote_types(a.dtype, torch.float32))
    i, j = overlapping_pairs(a, b)
    out[i, j] = rotated_bev_iou_aligned(a[i], b[j])
    return out


def box(x, y, length, width, yaw, z=0.0, height=1.0):
    return [x, y, z, length, width, height, yaw]


def test_limit_period():
    val = torch.tensor([-4.0, -math.pi, 0.0, 3.0, math.pi, 7.0], dtype=torch.float64)
    out = limit_period(val, 0.5, math.pi)
    assert torch.all(out >= -math.pi / 2) and torch.all(out < math.pi / 2)
    torch.testing.assert_close(torch.remainder(out - val, math.pi).remainder(math.pi - 1e-12),
                               torch.zeros_like(val), atol=1e-9, rtol=0)
    assert limit_period(torch.tensor(2 * math.pi + 0.1), 0.0, 2 * math.pi) == pytest.approx(0.1)


def test_encode_hand_computed_values():
    anchor = torch.tensor([[0.0, 0.0, -1.0, 4.0, 3.0, 2.0, 0.1, 0.0, 0.0]])
    gt = torch.tensor([[1.0, 2.0, -0.5, 8.0, 3.0, 1.0, 0.4, 1.5, -2.0]])
    # diagonal 5; z centres -1 + 1 = 0 and -0.5 + 0.5 = 0
    expected = torch.tensor([[0.2, 0.4, 0.0, math.log(2), 0.0, math.log(0.5), 0.3, 1.5, -2.0]])
    torch.testing.assert_close(encode(anchor, gt), expected)


@pytest.mark.parametrize("dim", [7, 9])
def test_coder_round_trip(dim):
    anchors = random_boxes(500, 100, 0, dim)
    gt = random_boxes(500, 100, 1, dim)
    deltas = encode(anchors, gt)
    assert deltas.shape == (500, dim)
    torch.testing.assert_close(decode(anchors, deltas), gt, rtol=0, atol=1e-9)
    torch.testing.assert_close(encode(anchors, decode(anchors, deltas)), deltas, rtol=0, atol=1e-9)
    # broadcasting: one anchor set against a batch of deltas
    batch = torch.stack([deltas, deltas * 0.5])
    assert decode(anchors, batch).shape == (2, 500, dim)


@pytest.mark.parametrize("dir_offset, dir_limit_offset", [(-math.pi / 4, 0.0), (0.7854, 0.0), (1.2, 0.0)])
def test_direction_decoding_over_the_whole_range(dir_offset, dir_limit_offset):
    yaw = torch.linspace(-2 * math.pi, 2 * math.pi, 4001, dtype=torch.float64)
    # stay clear of the bin boundaries, where the pi ambiguity is genuinely undecidable
    boundary = torch.remainder(yaw - dir_offset + 1e-3, math.pi) < 2e-3
    yaw = yaw[~boundary]
    bins = direction_target(yaw, dir_offset, dir_limit_offset)
    assert set(bins.unique().tolist()) == {0, 1}
    low = dir_offset - dir_limit_offset * math.pi
    for k in (-3, -2, -1, 0, 1, 2):
        for noise in (0.0, 0.3, -0.3):
            predicted = yaw + k * math.pi + noise * torch.cos(yaw * 7) * 1e-3
            decoded = decode_direction(predicted, bins, dir_offset, dir_limit_offset)
            assert torch.all(decoded >= low - 1e-9) and torch.all(decoded < low + 2 * math.pi + 1e-9)
            error = limit_period(decoded - yaw, 0.5, 2 * math.pi).abs()
            assert float(error.max()) < 1e-3


def test_direction_target_bins_by_hand():
    yaw = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 2, -1.0, -0.7, 2.5])
    # dir_offset -pi/4: bin 0 for yaw in [-pi/4, 3pi/4) (mod 2pi)
    assert direction_target(yaw, -math.pi / 4, 0.0).tolist() == [0, 0, 1, 1, 1, 0, 1]


def legacy_footprint(legacy_box) -> Polygon:
    """mmdet3d < 1.0 footprint: x_size along x, y_size along y, then rotated clockwise by yaw."""
    x, y, _, dx, dy, _, yaw = legacy_box[:7]
    c, s = math.cos(-yaw), math.sin(-yaw)
    pts = [(u * dx / 2, v * dy / 2) for u, v in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return Polygon([(x + u * c - v * s, y + u * s + v * c) for u, v in pts])


def test_legacy_conversion_by_hand():
    legacy = torch.tensor([
        [1.0, 2.0, -1.0, 2.0, 4.0, 1.5, 0.0, 0.5, -0.5],  # w=2 along x, l=4 along y
        [0.0, 0.0, 0.0, 1.0, 3.0, 1.0, math.pi / 2, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 3.0, 1.0, -math.pi / 2, 0.0, 0.0],
        [5.0, -5.0, 0.0, 1.0, 3.0, 1.0, 0.3, 0.0, 0.0],
    ], dtype=torch.float64)
    current = legacy_to_current(legacy)
    torch.testing.assert_close(current[0], torch.tensor([1.0, 2.0, -1.0, 4.0, 2.0, 1.5, -math.pi / 2, 0.5, -0.5],
                                                        dtype=torch.float64))
    assert current[1, 6] == pytest.approx(-math.pi)  # -pi/2 - pi/2, wrapped into [-pi, pi)
    assert current[2, 6] == pytest.approx(0.0)
    assert current[3, 6] == pytest.approx(-0.3 - math.pi / 2)
    for old, new in zip(legacy, current, strict=True):
        ours = Polygon(corners_bev(new).tolist())
        assert ours.symmetric_difference(legacy_footprint(old.tolist())).area < 1e-9


def test_corners():
    b = torch.tensor([box(1.0, 2.0, 4.0, 2.0, math.pi / 2, z=-1.0, height=3.0)])
    bev = corners_bev(b)[0]
    # length along +y after a quarter turn; rear-right, front-right, front-left, rear-left
    torch.testing.assert_close(bev, torch.tensor([[2.0, 0.0], [2.0, 4.0], [0.0, 4.0], [0.0, 0.0]]), atol=1e-6,
                               rtol=0)
    c3 = corners_3d(b)[0]
    assert c3.shape == (8, 3)
    assert c3[:, 2].tolist() == [-1.0, 2.0, 2.0, -1.0, -1.0, 2.0, 2.0, -1.0]
    torch.testing.assert_close(c3[[0, 3, 4, 7], :2], bev[[0, 3, 1, 2]])


def test_nearest_bev_iou_against_the_rule():
    a = random_boxes(40, 10, 3)
    b = random_boxes(30, 10, 4)
    ours = nearest_bev_iou(a, b)

    def rect(x):
        yaw = abs((float(x[6]) + math.pi / 2) % math.pi - math.pi / 2)
        dx, dy = (float(x[4]), float(x[3])) if yaw > math.pi / 4 else (float(x[3]), float(x[4]))
        return float(x[0]) - dx / 2, float(x[1]) - dy / 2, float(x[0]) + dx / 2, float(x[1]) + dy / 2

    for i in range(40):
        for j in range(30):
            p, q = rect(a[i]), rect(b[j])
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - w * h
            assert float(ours[i, j]) == pytest.approx(w * h / union, abs=1e-9)
    turned = torch.tensor([box(0.0, 0.0, 4.0, 2.0, math.pi / 2)])
    upright = torch.tensor([box(0.0, 0.0, 2.0, 4.0, 0.0)])
    assert float(nearest_bev_iou(turned, upright)) == pytest.approx(1.0)


SPECIAL = [
    (box(0, 0, 2, 1, 0), box(0, 0, 2, 1, 0), 1.0),  # identical
    (box(0, 0, 2, 1, 0.4), box(0, 0, 2, 1, 0.4 + math.pi), 1.0),  # same footprint, opposite heading
    (box(1, 0.5, 2, 1, 0), box(3, 0.5, 2, 1, 0), 0.0),  # sharing an edge from outside
    (box(1, 0.5, 2, 1, 0), box(3, 1.5, 2, 1, 0), 0.0),  # touching at a corner
    (box(1, 0.5, 2, 1, 0), box(2, 0.5, 2, 1, 0), 1 / 3),  # half overlap along a shared edge line
    (box(0, 0, 4, 1, 0), box(0, 0, 4, 1, math.pi / 2), 1 / 7),  # a plus sign
    (box(0, 0, 4, 4, 0), box(0, 0, 1, 1, 0.3), 1 / 16),  # contained
    (box(0, 0, 2, 2, 0), box(0, 0, 2, 2, math.pi / 4), None),  # octagon
    (box(0, 0, 2, 2, 0), box(0, 1, 2, 2, 0), 1 / 3),  # shared side edges (collinear)
    (box(10, 10, 0.5, 0.5, 0), box(-10, -10, 0.5, 0.5, 0), 0.0),  # far apart
]


def test_rotated_iou_special_cases():
    a = torch.tensor([s[0] for s in SPECIAL], dtype=torch.float64)
    b = torch.tensor([s[1] for s in SPECIAL], dtype=torch.float64)
    ours = rotated_bev_iou_aligned(a, b)
    ref = np.diag(shapely_iou(a, b))
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)
    for value, (_, _, expected) in zip(ours.tolist(), SPECIAL, strict=True):
        if expected is not None:
            assert value == pytest.approx(expected, abs=1e-9)
    # float32 on the same cases
    np.testing.assert_allclose(rotated_bev_iou_aligned(a.float(), b.float()).numpy(), ref, atol=2e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotated_iou_matrix_equals_shapely(seed):
    a = random_boxes(120, 12, seed)
    b = random_boxes(90, 12, seed + 10)
    b[:20] = a[:20]  # identical pairs
    b[20:30] = a[20:30]
    b[20:30, 6] += math.pi  # rotated by pi
    b[30:40, :2] = a[30:40, :2] + 1e-3  # nearly identical
    ours = iou_matrix(a, b)
    ref = shapely_iou(a, b)
    assert (ref > 0).sum() > 500
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(iou_matrix(a.float(), b.float()).numpy(), ref, atol=1e-5)


def test_overlapping_pairs_finds_every_overlap():
    a = random_boxes(150, 25, 5)
    ref = shapely_iou(a, a)
    for threshold in (0.0, 0.2, 0.5):
        i, j = overlapping_pairs(a, a, upper=True, min_iou=threshold)
        found = set(zip(i.tolist(), j.tolist(), strict=True))
        assert all(x < y for x, y in found)
        needed = {(x, y) for x, y in zip(*np.nonzero(ref > threshold + 1e-12), strict=True) if x < y}
        assert needed <= found
    groups = torch.arange(150) % 3
    i, j = overlapping_pairs(a, a, upper=True, same=groups)
    assert torch.all(groups[i] == groups[j])
    assert len(i) > 0
