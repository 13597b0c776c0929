"""Summary statistics of one LiDAR frame, to compare synthetic frames with real ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEIGHT_BINS = (-3.0, -2.0, -1.5, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)  # m, LiDAR frame z
DISTANCE_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0)  # m, BEV distance of an object's centre


def frame_stats(points: np.ndarray, boxes: np.ndarray, num_lidar_pts: np.ndarray, names: Sequence[str]) -> dict:
    """Points per frame, height histogram (fractions), range and intensity percentiles, and the median
    ``num_lidar_pts`` of cars and pedestrians per distance bin, for points (N, >=4) and boxes (G, >=7)."""
    distance = np.hypot(boxes[:, 0], boxes[:, 1])
    ranges = np.hypot(points[:, 0], points[:, 1])
    out = {"points": int(len(points)),
           "height_hist": (np.histogram(points[:, 2], bins=HEIGHT_BINS)[0] / max(len(points), 1)).round(3).tolist(),
           "range_pct_25_50_75_95": np.percentile(ranges, [25, 50, 75, 95]).round(1).tolist(),
           "intensity_pct_50_90_99": np.percentile(points[:, 3], [50, 90, 99]).round(1).tolist()}
    names = np.asarray(names)
    for cls in ("car", "pedestrian"):
        medians = []
        for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:]):
            sel = (names == cls) & (distance >= lo) & (distance < hi)
            medians.append(float(np.median(num_lidar_pts[sel])) if sel.any() else None)
        out[f"{cls}_pts_by_distance"] = medians
    return out
