"""The reference training pipeline's augmentation, on numpy arrays, deterministic under a seeded generator.

GlobalRotScaleTrans (rotation about z, isotropic scale, a normal translation), RandomFlip3D (BEV horizontal:
y -> -y; vertical, off in the reference's PointPillars configs: x -> -x), PointsRangeFilter, ObjectRangeFilter (BEV,
then yaw wrapped into [-pi, pi)), ObjectNameFilter (labels outside the classes) and PointShuffle. Points (N, C) start
with x, y, z; boxes (G, 7 or 9) are x, y, z_bottom, l, w, h, yaw[, vx, vy].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    rot_range: tuple[float, float] = (-0.3925, 0.3925)
    scale_range: tuple[float, float] = (0.95, 1.05)
    # std (m) of a normal shift of the whole cloud and its boxes per axis; 0 in the reference's PointPillars configs
    translation_std: tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip_ratio: float = 0.5
    # RandomFlip3D's flip_ratio_bev_vertical (x -> -x); 0 in the reference's PointPillars configs
    flip_ratio_vertical: float = 0.0
    shuffle: bool = True


@dataclass
class Sample3D:
    points: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def rotate_scale(s: Sample3D, angle: float, scale: float) -> Sample3D:
    c, si = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -si], [si, c]], dtype=np.float64)
    pts, boxes = s.points.copy(), s.boxes.copy()
    pts[:, :2] = pts[:, :2] @ rot.T
    pts[:, :3] *= scale
    boxes[:, :2] = boxes[:, :2] @ rot.T
    boxes[:, :6] *= scale
    boxes[:, 6] += angle
    if boxes.shape[1] >= 9:
        boxes[:, 7:9] = boxes[:, 7:9] @ rot.T * scale
    return Sample3D(pts.astype(s.points.dtype), boxes.astype(s.boxes.dtype), s.labels)


def translate(s: Sample3D, shift: np.ndarray) -> Sample3D:
    pts, boxes = s.points.copy(), s.boxes.copy()
    pts[:, :3] += shift.astype(pts.dtype)
    boxes[:, :3] += shift.astype(boxes.dtype)
    return Sample3D(pts, boxes, s.labels)


def flip_bev(s: Sample3D, direction: str = "horizontal") -> Sample3D:
    """mmdet3d's BEV flip of LiDAR boxes: horizontal negates y, vy and yaw; vertical x and vx, yaw -> pi - yaw."""
    axis = {"horizontal": 1, "vertical": 0}[direction]
    pts, boxes = s.points.copy(), s.boxes.copy()
    pts[:, axis] *= -1
    boxes[:, axis] *= -1
    boxes[:, 6] = -boxes[:, 6] if axis == 1 else np.pi - boxes[:, 6]
    if boxes.shape[1] >= 9:
        boxes[:, 7 + axis] *= -1
    return Sample3D(pts, boxes, s.labels)


def range_filter(s: Sample3D, point_cloud_range: tuple[float, ...]) -> Sample3D:
    """Points strictly inside the 3D range; boxes whose centre is strictly inside its BEV part; yaw in [-pi, pi)."""
    lo, hi = np.asarray(point_cloud_range[:3]), np.asarray(point_cloud_range[3:])
    keep_p = np.all((s.points[:, :3] > lo) & (s.points[:, :3] < hi), axis=1)
    keep_b = np.all((s.boxes[:, :2] > lo[:2]) & (s.boxes[:, :2] < hi[:2]), axis=1) & (s.labels >= 0)
    boxes = s.boxes[keep_b].copy()
    boxes[:, 6] = boxes[:, 6] - np.floor(boxes[:, 6] / (2 * np.pi) + 0.5) * 2 * np.pi
    return Sample3D(s.points[keep_p], boxes, s.labels[keep_b])


def augment(s: Sample3D, cfg: AugmentConfig, point_cloud_range: tuple[float, ...],
            rng: np.random.Generator) -> Sample3D:
    """The training pipeline in mmdet3d's order: rotate/scale/translate, flip, range filters, shuffle."""
    s = rotate_scale(s, rng.uniform(*cfg.rot_range), rng.uniform(*cfg.scale_range))
    if any(cfg.translation_std):  # no draw without it: the reference's runs replay as before
        s = translate(s, rng.normal(0.0, cfg.translation_std))
    if rng.random() < cfg.flip_ratio:
        s = flip_bev(s)
    if cfg.flip_ratio_vertical and rng.random() < cfg.flip_ratio_vertical:  # no draw when off, as for translation
        s = flip_bev(s, "vertical")
    s = range_filter(s, point_cloud_range)
    if cfg.shuffle:
        s = Sample3D(s.points[rng.permutation(len(s.points))], s.boxes, s.labels)
    return s
