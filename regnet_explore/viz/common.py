"""What every scene view shares: input normalisation, class colours, box wireframes, point down-sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from regnet_explore.detection.boxes import corners_3d
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_write

# One colour per class name over both datasets (nuScenes 10, Lyft 9; shared names share a colour).
CLASS_COLORS = {
    "car": "#1f77b4", "truck": "#ff7f0e", "trailer": "#8c564b", "bus": "#d62728",
    "construction_vehicle": "#bcbd22", "bicycle": "#17becf", "motorcycle": "#9467bd", "pedestrian": "#e377c2",
    "traffic_cone": "#ff9896", "barrier": "#7f7f7f", "emergency_vehicle": "#ffbb78", "other_vehicle": "#98df8a",
    "animal": "#c5b0d5",
}
FALLBACK_COLOR = "#333333"

# Wireframe edges over corners_3d's order (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0, x1y0z1, x1y1z1, x1y1z0)
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def class_color(name: str) -> str:
    return CLASS_COLORS.get(name, FALLBACK_COLOR)


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@dataclass
class BoxSet:
    """Boxes to draw: (K, >=7) x, y, z_bottom, l, w, h, yaw[, vx, vy] in the LiDAR frame, plus names and scores."""

    boxes: np.ndarray
    names: list[str]
    scores: np.ndarray | None = None  # None for ground truth

    @classmethod
    def from_any(cls, data, class_names: list[str] | None = None, score_thr: float = 0.0) -> BoxSet:
        """A detector/loader dict (``boxes``, ``labels`` or ``names``, optional ``scores``), the detector's
        ``Detections`` (boxes, scores, labels, class_names), or a BoxSet."""
        if isinstance(data, BoxSet):
            return data
        if hasattr(data, "class_names") and hasattr(data, "boxes"):  # detection.detector.Detections
            data, class_names = {"boxes": data.boxes, "labels": data.labels, "scores": data.scores}, data.class_names
        if not isinstance(data, dict) or "boxes" not in data:
            raise RegNetExploreError("boxes must be a dict with 'boxes' and 'labels' (or 'names'), or a BoxSet")
        boxes = as_numpy(data["boxes"]).reshape(-1, as_numpy(data["boxes"]).shape[-1] if len(data["boxes"]) else 7)
        if "names" in data:
            names = list(data["names"])
        else:
            labels = as_numpy(data.get("labels", np.zeros(len(boxes), dtype=int))).astype(int)
            names = [class_names[i] if class_names and 0 <= i < len(class_names) else str(i) for i in labels]
        scores = as_numpy(data["scores"]).astype(float) if data.get("scores") is not None else None
        if boxes.shape[0] and boxes.shape[1] < 7:
            raise RegNetExploreError(f"boxes need at least 7 columns (x, y, z, l, w, h, yaw), got {boxes.shape[1]}")
        if scores is not None and score_thr > 0:
            keep = scores >= score_thr
            boxes, scores, names = boxes[keep], scores[keep], [n for n, k in zip(names, keep) if k]
        return cls(boxes.astype(np.float64), names, scores)

    def __len__(self) -> int:
        return len(self.boxes)

    def corners(self) -> np.ndarray:
        """(K, 8, 3) corners."""
        return corners_3d(torch.as_tensor(self.boxes[:, :7])).numpy() if len(self) else np.zeros((0, 8, 3))

    def heading_segments(self) -> np.ndarray:
        """(K, 2, 3): from the box centre to the middle of its front face, at mid height."""
        if not len(self):
            return np.zeros((0, 2, 3))
        x, y, z, length, _, h, yaw = self.boxes[:, :7].T
        centre = np.stack([x, y, z + h / 2], -1)
        front = centre + np.stack([np.cos(yaw) * length / 2, np.sin(yaw) * length / 2, np.zeros_like(x)], -1)
        return np.stack([centre, front], 1)


def downsample(points: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` rows, chosen uniformly at random (seeded, order kept)."""
    if len(points) <= max_points:
        return points
    idx = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
    return points[idx]


def point_colors(points: np.ndarray, color_by: str) -> tuple[np.ndarray, str]:
    """Scalar per point and its label: height (z), intensity (column 3) or time lag (last column)."""
    if color_by == "height":
        return points[:, 2], "height (m)"
    if color_by == "intensity":
        if points.shape[1] < 4:
            raise RegNetExploreError("color_by='intensity' needs a 4th point column")
        return points[:, 3], "intensity"
    if color_by == "time":
        if points.shape[1] < 4:
            raise RegNetExploreError("color_by='time' needs a time-lag column (the last one)")
        return points[:, -1], "time lag (s)"
    raise RegNetExploreError(f"unknown color_by {color_by!r}: use 'height', 'intensity' or 'time'")


def color_range(value: np.ndarray) -> tuple[float, float]:
    """1st-99th percentile: a few tall outliers (poles, bridges) must not wash out the ground's colours."""
    if not len(value):
        return 0.0, 1.0
    lo, hi = np.percentile(value, [1, 99])
    return float(lo), float(max(hi, lo + 1e-6))


def check_points(points) -> np.ndarray:
    pts = as_numpy(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise RegNetExploreError(f"points must be (N, >=3), got shape {tuple(pts.shape)}")
    return pts


def save_png(fig, path, dpi: int = 100) -> None:
    """Write a matplotlib figure as PNG atomically."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
