"""Hard voxelization: torch fallback == spconv == a sequential scan (mmcv semantics); edge cases."""

import warnings

import pytest
import torch

from regnet_explore.detection.voxelize import grid_size, spconv_runs_on, voxelize, voxelize_spconv, voxelize_torch

RANGE = (-50, -50, -5, 50, 50, 3)
SIZE = (0.25, 0.25, 8)


def sequential_scan(points, voxel_size, pcr, max_points, max_voxels):
    """mmcv's CPU hard_voxelize written as the plain loop it is (small inputs only)."""
    nx, ny, nz = grid_size(pcr, voxel_size)
    index, voxels, coors = {}, [], []
    for p in points.tolist():
        c = [int(torch.floor(torch.tensor((p[j] - pcr[j]) / voxel_size[j], dtype=torch.float32))) for j in range(3)]
        if not (0 <= c[0] < nx and 0 <= c[1] < ny and 0 <= c[2] < nz):
            continue
        key = tuple(c)
        if key not in index:
            if len(voxels) >= max_voxels:
                continue
            index[key] = len(voxels)
            voxels.append([])
            coors.append([c[2], c[1], c[0]])
        v = index[key]
        if len(voxels[v]) < max_points:
            voxels[v].append(p)
    return voxels, coors


def cloud(n=20000, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 4, generator=g) * torch.tensor([110.0, 110, 9, 1]) - torch.tensor([55.0, 55, 5.5, 0])
    pts[: n // 20, :2] = torch.rand(n // 20, 2, generator=g) * 0.2  # one crowded pillar overflowing max_points
    return pts


@pytest.mark.parametrize("max_voxels", [1000, 100000])
def test_torch_backend_equals_spconv_exactly(max_voxels):
    pts = cloud()
    ours = voxelize_torch(pts, SIZE, RANGE, 32, max_voxels)
    ref = voxelize_spconv(pts, SIZE, RANGE, 32, max_voxels)
    assert ours[0].shape[0] == min(max_voxels, ref[0].shape[0])
    for a, b in zip(ours, ref, strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b)


def test_matches_sequential_scan_first_come_first_kept():
    pts = cloud(3000, seed=1)
    voxels, coors, num = voxelize_torch(pts, SIZE, RANGE, 8, 500)
    ref_voxels, ref_coors = sequential_scan(pts, SIZE, RANGE, 8, 500)
    assert len(voxels) == len(ref_voxels) == 500
    assert coors.tolist() == ref_coors
    assert num.tolist() == [len(v) for v in ref_voxels]
    for i, v in enumerate(ref_voxels):
        assert torch.equal(voxels[i, : len(v)], torch.tensor(v))
        assert not voxels[i, len(v):].any()  # zero padding


def test_batch_coors_have_sample_index_and_zyx_order():
    a, b = cloud(500, 2), cloud(700, 3)
    out = voxelize([a, b], SIZE, RANGE, 16, 1000)
    single_b = voxelize(b, SIZE, RANGE, 16, 1000)
    n_a = len(voxelize(a, SIZE, RANGE, 16, 1000).num_points)
    assert out.coors.shape[1] == 4 and out.coors.dtype == torch.long
    assert (out.coors[:n_a, 0] == 0).all() and (out.coors[n_a:, 0] == 1).all()
    assert torch.equal(out.coors[n_a:, 1:], single_b.coors[:, 1:])
    assert torch.equal(out.voxels[n_a:], single_b.voxels)
    # (z, y, x): x column is the fastest-changing grid axis of the points' own x
    x_index = torch.floor((out.voxels[:, 0, 0] + 50) / 0.25).long()
    assert torch.equal(out.coors[:, 3], x_index)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_empty_and_out_of_range_clouds_give_no_pillars(backend):
    empty = torch.zeros((0, 4))
    far = torch.tensor([[100.0, 0, 0, 0], [0, -60, 0, 0], [0, 0, 10, 0], [50.0, 0, 0, 0]])  # max edge excluded
    for pts in (empty, far):
        out = voxelize(pts, SIZE, RANGE, 64, 100, backend=backend)
        assert out.voxels.shape == (0, 64, 4)
        assert out.num_points.shape == (0,) and out.coors.shape == (0, 4)


def test_non_finite_rows_are_dropped_with_a_warning():
    pts = cloud(400, 4)
    dirty = torch.cat([pts[:100], torch.tensor([[float("nan"), 0, 0, 0], [0, float("inf"), 0, 0]]), pts[100:]])
    with pytest.warns(UserWarning, match="dropped 2 of 402 points"):
        out = voxelize(dirty, SIZE, RANGE, 16, 1000)
    clean = voxelize(pts, SIZE, RANGE, 16, 1000)
    assert torch.equal(out.voxels, clean.voxels) and torch.equal(out.coors, clean.coors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        voxelize(pts, SIZE, RANGE, 16, 1000)  # clean input: no warning


def test_backend_choice_follows_the_installed_spconv():
    from spconv.cppconstants import CPU_ONLY_BUILD

    assert spconv_runs_on(torch.device("cpu"))
    assert spconv_runs_on(torch.device("cuda")) == (not CPU_ONLY_BUILD)
    assert spconv_runs_on(torch.device("meta")) is False


def test_grid_size_of_reference_ranges():
    assert grid_size(RANGE, SIZE) == (400, 400, 1)
    assert grid_size((-80, -80, -5, 80, 80, 3), SIZE) == (640, 640, 1)
    assert grid_size((-100, -100, -5, 100, 100, 3), SIZE) == (800, 800, 1)


def test_spconv_buffers_never_leak_between_calls():
    """spconv's generator is cached and reuses its buffers: batches and copies must not see later clouds."""
    if not spconv_runs_on(torch.device("cpu")):
        pytest.skip("spconv has no CPU kernels here")
    a, b = cloud(2000, seed=3), cloud(2500, seed=4)
    single_a = voxelize([a], SIZE, RANGE, 32, 10000, backend="spconv")
    kept = single_a.voxels.clone()
    voxelize([b], SIZE, RANGE, 32, 10000, backend="spconv")  # reuses the buffers
    assert torch.equal(single_a.voxels, kept)  # copy=True (the default) owns its tensors
    batch = voxelize([a, b], SIZE, RANGE, 32, 10000, backend="spconv")
    only_b = voxelize([b], SIZE, RANGE, 32, 10000, backend="spconv")
    n_a = len(kept)
    assert torch.equal(batch.voxels[:n_a], kept) and torch.equal(batch.voxels[n_a:], only_b.voxels)
    assert torch.equal(batch.coors[n_a:, 1:], only_b.coors[:, 1:]) and bool((batch.coors[n_a:, 0] == 1).all())
