"""Hard voxelization: point clouds -> pillars (mmcv ``Voxelization`` semantics).

Points are taken in order; a point opens a new voxel while fewer than ``max_voxels`` exist, and joins an open
voxel while it holds fewer than ``max_points`` (first come, first kept). Points outside the range are dropped
(``floor((p - min) / size)`` outside ``[0, grid)``). Voxels come out in order of their first point.

Two backends give the same pillars: spconv's ``PointToVoxel`` (when it runs on the cloud's device) and a
vectorized torch implementation (sort / unique) for everything else.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from regnet_explore.errors import RegNetExploreError

Backend = Literal["auto", "spconv", "torch"]


@dataclass
class Voxels:
    """A batch of pillars: voxels (M, P, C) zero-padded, num_points (M,), coors (M, 4) = (batch, z, y, x)."""

    voxels: torch.Tensor
    num_points: torch.Tensor
    coors: torch.Tensor


def grid_size(point_cloud_range: Sequence[float], voxel_size: Sequence[float]) -> tuple[int, int, int]:
    """Voxel grid (nx, ny, nz) of a range [x0, y0, z0, x1, y1, z1] (mmcv rounds the ratio)."""
    return tuple(int(round((point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i])) for i in range(3))


def spconv_runs_on(device: torch.device) -> bool:
    """Whether the installed spconv has kernels for ``device`` (the pip CPU wheel has none for CUDA)."""
    try:
        from spconv.cppconstants import CPU_ONLY_BUILD
    except ImportError:
        return False
    return device.type == "cpu" or (device.type == "cuda" and not CPU_ONLY_BUILD)


def drop_non_finite(points: torch.Tensor) -> torch.Tensor:
    """Rows with NaN/inf removed, with a warning saying how many."""
    finite = torch.isfinite(points).all(dim=1)
    if bool(finite.all()):
        return points
    warnings.warn(f"voxelize: dropped {int((~finite).sum())} of {len(points)} points with NaN/inf values",
                  stacklevel=3)
    return points[finite]


def voxelize_torch(points: torch.Tensor, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                   max_points: int, max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One cloud (N, C) -> voxels (M, P, C), coors (M, 3) as (z, y, x) int32, num_points (M,) int32."""
    nx, ny, nz = grid_size(point_cloud_range, voxel_size)
    dev = points.device
    low = torch.tensor(point_cloud_range[:3], dtype=points.dtype, device=dev)
    size = torch.tensor(voxel_size, dtype=points.dtype, device=dev)
    cell = torch.floor((points[:, :3] - low) / size).long()
    inside = ((cell >= 0) & (cell < torch.tensor([nx, ny, nz], device=dev))).all(dim=1)
    order = torch.nonzero(inside).squeeze(1)  # original point indices, ascending
    cell = cell[order]
    key = (cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0]
    uniq, inverse = torch.unique(key, return_inverse=True)
    # voxels are numbered by their first point, as a sequential scan would open them
    first = torch.full((len(uniq),), len(order), dtype=torch.long, device=dev)
    first.scatter_reduce_(0, inverse, torch.arange(len(order), device=dev), reduce="amin")
    by_first = torch.argsort(first)
    kept = min(max_voxels, len(uniq))
    voxel_id = torch.empty_like(by_first)
    voxel_id[by_first] = torch.arange(len(uniq), device=dev)
    point_voxel = voxel_id[inverse]
    # rank of each point inside its voxel: stable sort keeps the scan order
    sorted_voxel, perm = torch.sort(point_voxel, stable=True)
    counts = torch.bincount(sorted_voxel, minlength=len(uniq))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(perm), device=dev) - starts[sorted_voxel]
    keep = (rank < max_points) & (sorted_voxel < kept)
    v, r, src = sorted_voxel[keep], rank[keep], order[perm[keep]]
    voxels = points.new_zeros((kept, max_points, points.shape[1]))
    voxels[v, r] = points[src]
    num_points = counts[:kept].clamp(max=max_points).int()
    first_cell = cell[first[by_first[:kept]]]
    coors = first_cell.flip(1).int()
    return voxels, coors, num_points


def voxelize_spconv(points: torch.Tensor, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                    max_points: int, max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as :func:`voxelize_torch`, through spconv's ``PointToVoxel``.

    The tensors are views of the cached generator's buffers: valid until the next call with the same geometry
    (:func:`voxelize` copies them unless told the caller consumes them first).
    """
    gen = _point_to_voxel(tuple(voxel_size), tuple(point_cloud_range), points.shape[1], max_voxels, max_points,
                          str(points.device))
    return gen(points.contiguous())


@functools.lru_cache(maxsize=8)
def _point_to_voxel(voxel_size: tuple, point_cloud_range: tuple, features: int, max_voxels: int, max_points: int,
                    device: str):
    """One generator per geometry and device: it owns ~40 MB of buffers and a hash grid, allocated once."""
    from spconv.pytorch.utils import PointToVoxel

    return PointToVoxel(vsize_xyz=list(voxel_size), coors_range_xyz=list(point_cloud_range),
                        num_point_features=features, max_num_voxels=max_voxels, max_num_points_per_voxel=max_points,
                        device=torch.device(device))


def voxelize(clouds: torch.Tensor | Sequence[torch.Tensor], voxel_size: Sequence[float],
             point_cloud_range: Sequence[float], max_points: int, max_voxels: int,
             backend: Backend = "auto", copy: bool = True) -> Voxels:
    """A cloud (N, C) or a list of clouds -> :class:`Voxels` for the batch, on the clouds' device.

    Empty clouds and clouds entirely out of range give no pillars; rows with NaN/inf are dropped with a warning.
    ``copy=False`` lets a single cloud's pillars alias spconv's buffers (no 40 MB copy): for callers that use them
    before voxelizing again, as the detector does.
    """
    if isinstance(clouds, torch.Tensor):
        clouds = [clouds]
    if backend not in ("auto", "spconv", "torch"):
        raise RegNetExploreError(f"unknown voxelization backend {backend!r}: use 'auto', 'spconv' or 'torch'")
    out_v, out_n, out_c = [], [], []
    for b, pts in enumerate(clouds):
        if pts.dim() != 2 or pts.shape[1] < 3:
            raise RegNetExploreError(f"point cloud {b} has shape {tuple(pts.shape)}; expected (N, C) with C >= 3")
        pts = drop_non_finite(pts.float())
        use_spconv = backend == "spconv" or (backend == "auto" and spconv_runs_on(pts.device))
        if len(pts) == 0:
            use_spconv = False  # spconv rejects empty input
        fn = voxelize_spconv if use_spconv else voxelize_torch
        aliased = use_spconv
        v, c, n = fn(pts, voxel_size, point_cloud_range, max_points, max_voxels)
        if aliased and len(clouds) > 1:  # the next cloud reuses spconv's buffers
            v = v.clone()
        out_v.append(v)
        out_n.append(n.long())
        out_c.append(torch.cat([torch.full_like(c[:, :1], b), c], dim=1).long())
    if len(clouds) == 1:
        return Voxels(out_v[0].clone() if copy and aliased else out_v[0], out_n[0], out_c[0])
    return Voxels(torch.cat(out_v), torch.cat(out_n), torch.cat(out_c))
