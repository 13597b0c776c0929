"""The reference training pipeline's augmentation, on numpy arrays, deterministic under a seeded generator.

ObjectNoise's vertical part (each box moved up or down with the points inside it), GlobalRotScaleTrans (rotation
about z, isotropic scale, a normal translation), RandomFlip3D (BEV horizontal: y -> -y), PointsRangeFilter,
ObjectRangeFilter (BEV, then yaw wrapped into [-pi, pi)), ObjectNameFilter (labels outside the classes) and
PointShuffle. Points (N, C) start with x, y, z; boxes (G, 7 or 9) are x, y, z_bottom, l,
w, h, yaw[, vx, vy].
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
    # std (m) of a normal vertical shift of each box with its points: the z part of mmdet3d's ObjectNoise (its x, y
    # and yaw parts, which need a collision test, are not here); 0 in the reference's nuScenes and Lyft configs
    object_z_std: float = 0.0
    flip_ratio: float = 0.5
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


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, cell: float = 1.0) -> np.ndarray:
    """(N,) index of the box (x, y, z_bottom, l, w, h, yaw) holding each point, -1 for none (the first where boxes
    overlap). Only the points in BEV cells that a box's circumscribed circle reaches, and of those only the pairs
    inside that circle, get the exact test."""
    owner = np.full(len(points), -1, dtype=np.int64)
    if not len(boxes) or not len(points):
        return owner
    radius = np.hypot(boxes[:, 3], boxes[:, 4]) / 2
    reach = int(np.ceil(radius.max() / cell)) + 1
    offsets = np.stack(np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1)), -1).reshape(-1, 2)
    near = (offsets ** 2).sum(1)[None] <= (radius[:, None] / cell + 1.5) ** 2  # (G, K): each box's own disc
    covered = (np.floor(boxes[:, :2] / cell).astype(np.int64)[:, None] + offsets[None])[near]
    lo, span = covered.min(0), np.ptp(covered, 0) + 1
    marked = np.zeros(span[0] * span[1], dtype=bool)
    marked[(covered[:, 0] - lo[0]) * span[1] + covered[:, 1] - lo[1]] = True
    rel = np.floor(points[:, :2] / cell).astype(np.int64) - lo
    candidates = np.flatnonzero(((rel >= 0) & (rel < span)).all(1))
    candidates = candidates[marked[rel[candidates, 0] * span[1] + rel[candidates, 1]]]
    dx = points[candidates, None, 0].astype(np.float64) - boxes[None, :, 0]  # (M, G)
    dy = points[candidates, None, 1].astype(np.float64) - boxes[None, :, 1]
    m, g = np.nonzero(dx * dx + dy * dy <= radius ** 2)  # pairs inside the circle
    d, box = np.stack([dx[m, g], dy[m, g]], 1), boxes[g]
    cos, sin = np.cos(box[:, 6]), np.sin(box[:, 6])
    dz = points[candidates[m], 2] - box[:, 2]
    inside = ((np.abs(d[:, 0] * cos + d[:, 1] * sin) <= box[:, 3] / 2)
              & (np.abs(-d[:, 0] * sin + d[:, 1] * cos) <= box[:, 4] / 2) & (dz >= 0) & (dz <= box[:, 5]))
    m, g = m[inside], g[inside]
    first = np.unique(m, return_index=True)[1]  # pairs come sorted by point, then box: the lowest box index
    owner[candidates[m[first]]] = g[first]
    return owner


def lift_objects(s: Sample3D, dz: np.ndarray) -> Sample3D:
    """Each box moved by ``dz`` (G,) in z with the points inside it (ObjectNoise with a vertical translation)."""
    owner = points_in_boxes(s.points, s.boxes)
    pts, boxes = s.points.copy(), s.boxes.copy()
    moved = owner >= 0
    pts[moved, 2] += dz[owner[moved]].astype(pts.dtype)
    boxes[:, 2] += dz.astype(boxes.dtype)
    return Sample3D(pts, boxes, s.labels)


def translate(s: Sample3D, shift: np.ndarray) -> Sample3D:
    pts, boxes = s.points.copy(), s.boxes.copy()
    pts[:, :3] += shift.astype(pts.dtype)
    boxes[:, :3] += shift.astype(boxes.dtype)
    return Sample3D(pts, boxes, s.labels)


def flip_bev(s: Sample3D) -> Sample3D:
    """mmdet3d's horizontal BEV flip of LiDAR boxes: y, vy and yaw change sign."""
    pts, boxes = s.points.copy(), s.boxes.copy()
    pts[:, 1] *= -1
    boxes[:, 1] *= -1
    boxes[:, 6] *= -1
    if boxes.shape[1] >= 9:
        boxes[:, 8] *= -1
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
    """The training pipeline in mmdet3d's order: object noise, rotate/scale/translate, flip, range filters, shuffle."""
    if cfg.object_z_std:  # no draw without it, as for the translation
        s = lift_objects(s, rng.normal(0.0, cfg.object_z_std, len(s.boxes)))
    s = rotate_scale(s, rng.uniform(*cfg.rot_range), rng.uniform(*cfg.scale_range))
    if any(cfg.translation_std):  # no draw without it: the reference's runs replay as before
        s = translate(s, rng.normal(0.0, cfg.translation_std))
    if rng.random() < cfg.flip_ratio:
        s = flip_bev(s)
    s = range_filter(s, point_cloud_range)
    if cfg.shuffle:
        s = Sample3D(s.points[rng.permutation(len(s.points))], s.boxes, s.labels)
    return s
