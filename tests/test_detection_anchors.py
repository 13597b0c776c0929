"""Anchor generation: counts, channel order and exact centres of the mmdet3d PointPillars anchor sets."""

from __future__ import annotations

import pytest
import torch

from regnet_explore.detection.anchors import aligned_anchors
from regnet_explore.errors import RegNetExploreError

from .helpers import NUS_FPN, NUS_SECFPN, NUS_SECFPN_Z


def test_nuscenes_fpn_has_420000_anchors_in_three_levels():
    levels = NUS_FPN.generate([(200, 200), (100, 100), (50, 50)])
    assert NUS_FPN.num_per_location == 8
    assert [tuple(a.shape) for a in levels] == [(320_000, 9), (80_000, 9), (20_000, 9)]
    assert sum(a.shape[0] for a in levels) == 420_000
    assert all(a.dtype == torch.float32 for a in levels)


def test_nuscenes_secfpn_has_560000_anchors_on_one_map():
    (anchors,) = NUS_SECFPN.generate([(200, 200)])
    assert NUS_SECFPN.num_per_location == 14
    assert anchors.shape == (560_000, 9)


def test_level_count_must_match_scales():
    with pytest.raises(RegNetExploreError, match="3 scales"):
        NUS_FPN.generate([(200, 200)])


def test_channel_order_is_location_then_size_then_rotation():
    anchors = NUS_FPN.generate([(200, 200), (100, 100), (50, 50)])[0].reshape(200, 200, 4, 2, 9)
    sizes = torch.tensor([[2.5981, 0.8660, 1], [1.7321, 0.5774, 1], [1, 1, 1], [0.4, 0.4, 1]])
    for s in range(4):
        for r, rot in enumerate([0.0, 1.57]):
            assert torch.equal(anchors[7, 3, s, r, 3:6], sizes[s])
            assert anchors[7, 3, s, r, 6] == pytest.approx(rot)
    # row index = y, column index = x
    assert anchors[7, 3, 0, 0, 0] == pytest.approx(-50 + 0.25 + 3 * 0.5)
    assert anchors[7, 3, 0, 0, 1] == pytest.approx(-50 + 0.25 + 7 * 0.5)
    # flat index = ((y * W + x) * n_sizes + size) * n_rot + rot
    flat = NUS_FPN.generate([(200, 200), (100, 100), (50, 50)])[0]
    assert torch.equal(flat[((7 * 200 + 3) * 4 + 2) * 2 + 1], anchors[7, 3, 2, 1])


def test_exact_centres_scales_and_custom_values():
    levels = NUS_FPN.generate([(200, 200), (100, 100), (50, 50)])
    for anchors, (n, scale) in zip(levels, [(200, 1), (100, 2), (50, 4)], strict=True):
        grid = anchors.reshape(n, n, 8, 9)
        step = 100 / n
        expected = torch.linspace(-50, 50, n + 1)[:n] + step / 2
        torch.testing.assert_close(grid[0, :, 0, 0], expected, rtol=0, atol=1e-5)  # x over columns
        torch.testing.assert_close(grid[:, 0, 0, 1], expected, rtol=0, atol=1e-5)  # y over rows
        assert torch.all(grid[..., 2] == torch.tensor(-1.8))  # bottom z, not shifted
        torch.testing.assert_close(grid[0, 0, 0, 3:6], torch.tensor([2.5981, 0.8660, 1.0]) * scale)
        assert torch.all(grid[..., 7:] == 0)
    (secfpn,) = NUS_SECFPN.generate([(200, 200)])
    grid = secfpn.reshape(200, 200, 7, 2, 9)
    assert grid[0, 0, 0, 0, 0] == pytest.approx(-49.6 + 0.248, abs=1e-5)
    assert grid[199, 199, 0, 0, 1] == pytest.approx(49.6 - 0.248, abs=1e-5)
    torch.testing.assert_close(grid[0, 0, :, 0, 2], torch.tensor(NUS_SECFPN_Z))


def test_matches_a_plain_loop_over_cells():
    ranges = [[-2, -1, -1.5, 2, 3, -1.5], [-4, -3, 0.0, 4, 1, 1.0]]
    sizes = [[3.0, 1.5, 1.6], [0.8, 0.6, 1.7]]
    rotations = [0.0, 0.7, 1.57]
    anchors = aligned_anchors((3, 5), ranges, sizes, rotations, scale=2.0, custom_values=[0.5])
    rows = []
    for y in range(3):
        for x in range(5):
            for rng, size in zip(ranges, sizes, strict=True):
                for rot in rotations:
                    cx = rng[0] + (x + 0.5) * (rng[3] - rng[0]) / 5
                    cy = rng[1] + (y + 0.5) * (rng[4] - rng[1]) / 3
                    cz = (rng[2] + rng[5]) / 2  # a z range [z0, z1] with one cell is centred
                    rows.append([cx, cy, cz, *(2 * v for v in size), rot, 0.5])
    torch.testing.assert_close(anchors, torch.tensor(rows), rtol=0, atol=1e-5)


def test_shared_range_is_replicated_and_bad_lengths_fail():
    one = aligned_anchors((2, 2), [[0, 0, 0, 2, 2, 0]], [[1, 1, 1], [2, 2, 2]], [0.0])
    two = aligned_anchors((2, 2), [[0, 0, 0, 2, 2, 0]] * 2, [[1, 1, 1], [2, 2, 2]], [0.0])
    assert torch.equal(one, two)
    with pytest.raises(RegNetExploreError, match="ranges"):
        aligned_anchors((2, 2), [[0, 0, 0, 2, 2, 0]] * 2, [[1, 1, 1]] * 3, [0.0])
    with pytest.raises(RegNetExploreError, match="sizes 3 values"):
        aligned_anchors((2, 2), [[0, 0, 0, 2, 2, 0]], [[1, 1]], [0.0])


def test_device_follows_the_argument():
    anchors = aligned_anchors((2, 3), [[0, 0, 0, 3, 2, 0]], [[1, 1, 1]], [0.0], device=torch.device("cpu"))
    assert anchors.device.type == "cpu"
    assert anchors.shape == (6, 7)
