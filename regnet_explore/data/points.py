"""Reading LiDAR point files (nuScenes / Lyft ``.bin``: float32, ``load_dim`` values per point)."""

from __future__ import annotations

import os

import numpy as np

from regnet_explore.errors import RegNetExploreError


def load_points_bin(path: str | os.PathLike, load_dim: int = 5) -> np.ndarray:
    """Points of a ``.bin`` file as a float32 array (N, load_dim).

    nuScenes and Lyft store x, y, z, intensity, ring index (5 values); KITTI stores 4.
    """
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except FileNotFoundError:
        raise RegNetExploreError(f"{path}: no such point file") from None
    except OSError as e:
        raise RegNetExploreError(f"{path}: cannot read point file ({e.strerror or e})") from None
    if raw.size % load_dim:
        raise RegNetExploreError(
            f"{path}: {os.path.getsize(path)} bytes is not a whole number of points of {load_dim} float32 values "
            f"({4 * load_dim} bytes each); truncated file or wrong --load-dim")
    return raw.reshape(-1, load_dim)
