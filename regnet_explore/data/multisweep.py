"""Multi-sweep point clouds as mmdetection3d's ``LoadPointsFromMultiSweeps`` builds them (numpy)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from regnet_explore.data.points import load_points_bin


def aggregate_sweeps(key_path: str | os.PathLike, sweeps: Sequence[tuple[str | os.PathLike, float, np.ndarray]],
                     load_dim: int = 5) -> np.ndarray:
    """Key frame plus previous sweeps -> (N, 5) float32 = x, y, z, intensity, time lag (s), key-frame LiDAR frame.

    sweeps: (path, time lag in s, 4x4 sweep-to-key-frame transform). The key frame's points get lag 0; the
    fifth stored value (ring index) is replaced by the lag, as mmdetection3d does before keeping dims [0, 1, 2, 4].
    """
    clouds = [load_points_bin(key_path, load_dim)[:, :5].copy()]
    clouds[0][:, 4] = 0.0
    for path, lag, sweep2key in sweeps:
        points = load_points_bin(path, load_dim)[:, :5].copy()
        points[:, :3] = points[:, :3] @ sweep2key[:3, :3].T.astype(np.float32) + sweep2key[:3, 3].astype(np.float32)
        points[:, 4] = lag
        clouds.append(points)
    return np.concatenate(clouds, axis=0).astype(np.float32, copy=False)
