"""What every scene view shares: its box inputs, class colours, box wireframes, point down-sampling.

A view takes ground truth and predictions as :class:`~regnet_explore.detection.detections.Detections`, or ground
truth as plain arrays through ``gt_boxes=`` (K, >=7) and ``gt_names=`` (K class names); :func:`view_boxes` turns
them into the :class:`BoxSet` it draws and refuses anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from regnet_explore.detection.boxes import corners_3d
from regnet_explore.detection.detections import Detections
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
    """The views' drawing type: boxes (K, >=7) = x, y, z_bottom, l, w, h, yaw[, vx, vy] in the LiDAR frame (float64),
    one class name per box, and scores (K,) for predictions (None for ground truth)."""

    boxes: np.ndarray
    names: list[str]
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(as_numpy(self.boxes), dtype=np.float64)
        if boxes.ndim != 2 and not boxes.size:
            boxes = boxes.reshape(0, 7)
        if boxes.ndim != 2 or boxes.shape[1] < 7:
            raise RegNetExploreError(f"boxes must be (K, >=7) = x, y, z_bottom, l, w, h, yaw, got shape "
                                     f"{boxes.shape}")
        self.boxes, self.names = boxes, list(self.names)
        if len(self.names) != len(boxes):
            raise RegNetExploreError(f"{len(boxes)} boxes but {len(self.names)} class names")
        if self.scores is not None:
            self.scores = np.asarray(as_numpy(self.scores), dtype=np.float64).reshape(-1)
            if len(self.scores) != len(boxes):
                raise RegNetExploreError(f"{len(boxes)} boxes but {len(self.scores)} scores")

    @classmethod
    def from_detections(cls, det: Detections, score_thr: float = 0.0) -> BoxSet:
        """Predictions scoring at least ``score_thr``, with their scores."""
        det = det.above(score_thr)
        arrays = det.numpy()
        return cls(arrays["boxes"], det.names, arrays["scores"])

    @classmethod
    def from_ground_truth(cls, det: Detections) -> BoxSet:
        """Ground truth: every box, no scores (those of ``Detections.from_arrays(..., None, ...)`` are all 1)."""
        return cls(det.numpy()["boxes"], det.names)

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


def _require_detections(value: object, what: str) -> Detections:
    if not isinstance(value, Detections):
        raise RegNetExploreError(
            f"{what}: expected Detections, got {type(value).__name__}; build it with Detections.from_arrays(boxes, "
            "scores, labels, class_names), or give ground truth as gt_boxes=(K, >=7) array and gt_names=K names")
    return value


def view_boxes(gt: Detections | None = None, pred: Detections | None = None,
               gt_boxes: np.ndarray | torch.Tensor | None = None, gt_names: Sequence[str] | None = None,
               score_thr: float = 0.0) -> tuple[BoxSet | None, BoxSet | None]:
    """(ground truth, predictions) box sets of a view, each None when not given.

    Ground truth comes from ``gt`` or from ``gt_boxes`` with ``gt_names`` (not both); predictions from ``pred``,
    those below ``score_thr`` left out.
    """
    if gt is not None and (gt_boxes is not None or gt_names is not None):
        raise RegNetExploreError("ground truth: give gt (Detections) or gt_boxes with gt_names, not both")
    if (gt_boxes is None) != (gt_names is None):
        raise RegNetExploreError("ground truth as arrays needs both gt_boxes (K, >=7) and gt_names (K class names)")
    gt_set = None
    if gt is not None:
        gt_set = BoxSet.from_ground_truth(_require_detections(gt, "gt"))
    elif gt_boxes is not None:
        gt_set = BoxSet(gt_boxes, gt_names)
    pred_set = None if pred is None else BoxSet.from_detections(_require_detections(pred, "pred"), score_thr)
    return gt_set, pred_set


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
