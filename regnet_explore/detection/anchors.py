"""3D anchors on BEV feature maps (mmdet3d ``AlignedAnchor3DRangeGenerator`` with ``reshape_out=True``).

Anchors are boxes (x, y, z_bottom, l, w, h, yaw[, custom...]) centred on the cells of an (H, W) map that covers
each size's range: per axis ``linspace(min, max, n + 1)`` shifted by half a step, first n kept (y over H, x over
W). Output order is location-major (row y, then column x), then size, then rotation, so the anchor index within
a location is ``a = size_index * len(rotations) + rot_index`` -- the channel layout of the head's 1x1 convs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from regnet_explore.errors import RegNetExploreError


def _cell_centres(low: float, high: float, n: int, device: torch.device | str | None) -> torch.Tensor:
    """(n,) centres of n equal cells on [low, high], computed in mmdet3d's order of float32 operations."""
    edges = torch.linspace(low, high, n + 1, dtype=torch.float32, device=device)
    return (edges + (edges[1] - edges[0]) / 2)[:n]


def aligned_anchors(feature_size: tuple[int, int], ranges: Sequence[Sequence[float]],
                    sizes: Sequence[Sequence[float]], rotations: Sequence[float], scale: float = 1.0,
                    custom_values: Sequence[float] = (), device: torch.device | str | None = None) -> torch.Tensor:
    """Anchors of one feature map: (H * W * A, 7 + len(custom_values)) float32, A = len(sizes) * len(rotations).

    ``ranges``: one [x0, y0, z0, x1, y1, z1] per size, or a single one shared by all sizes; z0 is the anchor
    bottom. ``sizes``: (l, w, h) each, multiplied by ``scale``. ``custom_values`` are appended to every anchor
    (mmdet3d appends zeros; every reference config uses zeros, e.g. the nuScenes velocity).
    """
    height, width = feature_size
    if not sizes or not rotations:
        raise RegNetExploreError("anchor sizes and rotations must not be empty")
    if len(ranges) not in (1, len(sizes)):
        raise RegNetExploreError(f"got {len(ranges)} anchor ranges for {len(sizes)} sizes; give one or one per size")
    if any(len(r) != 6 for r in ranges) or any(len(s) != 3 for s in sizes):
        raise RegNetExploreError("anchor ranges need 6 values [x0, y0, z0, x1, y1, z1] and sizes 3 values (l, w, h)")
    ranges = list(ranges) * len(sizes) if len(ranges) == 1 else list(ranges)
    # a loop over the few anchor types (<= 18), each building a whole map at once
    xs = torch.stack([_cell_centres(r[0], r[3], width, device) for r in ranges], dim=1)  # (W, S)
    ys = torch.stack([_cell_centres(r[1], r[4], height, device) for r in ranges], dim=1)  # (H, S)
    zs = torch.cat([_cell_centres(r[2], r[5], 1, device) for r in ranges])  # (S,)
    dims = torch.tensor(sizes, dtype=torch.float32, device=device) * scale  # (S, 3)
    rots = torch.tensor(rotations, dtype=torch.float32, device=device)  # (R,)
    shape = (height, width, len(sizes), len(rotations))
    columns = [
        xs[None, :, :, None].expand(shape),
        ys[:, None, :, None].expand(shape),
        zs[None, None, :, None].expand(shape),
        *(dims[None, None, :, None, k].expand(shape) for k in range(3)),
        rots[None, None, None, :].expand(shape),
        *(torch.full(shape, float(v), device=device) for v in custom_values),
    ]
    return torch.stack(columns, dim=-1).reshape(-1, len(columns))


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor sets of a head: shared ranges/sizes/rotations, one scale per feature level.

    FPN heads use ``scales=(1, 2, 4)`` (sizes multiplied per level); SECFPN heads one level with scale 1.
    Sizes are (l, w, h) in the current (mmdet3d >= 1.0) LiDAR convention.
    """

    ranges: Sequence[Sequence[float]]
    sizes: Sequence[Sequence[float]]
    rotations: Sequence[float] = (0.0, 1.57)
    scales: Sequence[float] = (1.0,)
    custom_values: Sequence[float] = ()

    @property
    def num_per_location(self) -> int:
        return len(self.sizes) * len(self.rotations)

    @property
    def box_dim(self) -> int:
        return 7 + len(self.custom_values)

    def generate(self, feature_sizes: Sequence[tuple[int, int]],
                 device: torch.device | str | None = None) -> list[torch.Tensor]:
        """One (H_i * W_i * A, box_dim) anchor tensor per level; level i uses ``scales[i]``."""
        if len(feature_sizes) != len(self.scales):
            raise RegNetExploreError(
                f"got {len(feature_sizes)} feature maps but the anchor config has {len(self.scales)} scales "
                f"{list(self.scales)}; give one scale per level")
        return [aligned_anchors(tuple(size), self.ranges, self.sizes, self.rotations, scale, self.custom_values,
                                device) for size, scale in zip(feature_sizes, self.scales, strict=True)]
