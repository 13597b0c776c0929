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


def key_frame_points(raw: np.ndarray, path: str) -> np.ndarray:
    """(N, load_dim) file rows -> (N, 4) x, y, z, time-lag = 0 (a single key frame)."""
    if raw.ndim != 2 or raw.shape[1] < 3:
        raise RegNetExploreError(f"{path}: points of shape {raw.shape}; need at least x, y, z per point")
    out = np.zeros((len(raw), 4), dtype=np.float32)
    out[:, :3] = raw[:, :3]
    return out
