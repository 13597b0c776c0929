"""Detections (LiDAR frame) -> global-frame boxes in the devkits' conventions, and ground truth as detections.

Evaluation takes one :class:`~regnet_explore.detection.detections.Detections` per sample token, its labels indexing
the dataset's class names (``predict_split`` maps a detector's labels so; ``detections_file`` reads them so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from regnet_explore.data.dataset import DetectionData
from regnet_explore.data.geometry import matrix_to_quaternion, quaternion_multiply, yaw_to_quaternion
from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError


@dataclass(frozen=True)
class GlobalBoxes:
    """Boxes in the global frame as the devkits store them: centres (K, 3), sizes (K, 3) = w, l, h, quaternions
    (K, 4), global xy velocities (K, 2), scores (K,), labels (K,), and the centres' xy distance to the ego (K,)."""
    translation: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    ego_distance: np.ndarray


def check_complete(data: DetectionData, detections: Mapping[str, Detections]) -> None:
    """Raise unless every sample of ``data``'s split has detections (possibly none)."""
    missing = [t for t in data.tokens if t not in detections]
    if missing:
        raise RegNetExploreError(f"detections: {len(missing)} of {len(data)} samples of {data.version} "
                                 f"{data.split or 'all'} have no entry (first: {missing[0]})")


def detection_arrays(token: str, det: Detections, class_names: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (K, 9) float64 with zero velocity where absent, scores (K,) float64, labels (K,) int64) of one
    sample's detections, whose labels must index ``class_names``."""
    if not isinstance(det, Detections):
        raise RegNetExploreError(f"detections of sample {token}: a {type(det).__name__}, not Detections (convert "
                                 "arrays with Detections.from_arrays(boxes, scores, labels, class_names))")
    if det.class_names != tuple(class_names):
        raise RegNetExploreError(f"detections of sample {token}: labels index {det.class_names}, not the dataset's "
                                 f"classes {tuple(class_names)}")
    arrays = det.numpy()
    boxes = arrays["boxes"]
    if boxes.shape[1] == 7:
        boxes = np.concatenate([boxes, np.zeros((len(boxes), 2))], axis=1)
    return boxes, arrays["scores"], arrays["labels"]


def lidar_to_global(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, lidar2ego: np.ndarray,
                    ego2global: np.ndarray) -> GlobalBoxes:
    """LiDAR-frame boxes (K, 9) -> global devkit boxes: centre = bottom + h/2, size (w, l, h), rotation composed
    as ego2global * lidar2ego * yaw, velocity rotated with the box (as mmdetection3d's output_to_nusc_box and
    lidar_nusc_box_to_global do)."""
    centre = boxes[:, :3] + np.stack([np.zeros(len(boxes)), np.zeros(len(boxes)), boxes[:, 5] / 2], -1)
    ego_centre = centre @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    lidar2global = ego2global @ lidar2ego
    vel = np.concatenate([boxes[:, 7:9], np.zeros((len(boxes), 1))], axis=1) @ lidar2global[:3, :3].T
    rotation = quaternion_multiply(matrix_to_quaternion(lidar2global[:3, :3]), yaw_to_quaternion(boxes[:, 6]))
    return GlobalBoxes(translation=centre @ lidar2global[:3, :3].T + lidar2global[:3, 3],
                       size=boxes[:, [4, 3, 5]], rotation=rotation.reshape(-1, 4), velocity=vel[:, :2],
                       scores=scores, labels=labels, ego_distance=np.linalg.norm(ego_centre[:, :2], axis=1))


def oracle_detections(data: DetectionData) -> dict[str, Detections]:
    """Ground truth of every sample of ``data`` as detections (the perfect detector).

    Scores are distinct (decreasing from 1 in sample order): the devkit interpolates TP errors over the
    confidence, which collapses to a single match when every score ties.
    """
    out, rank = {}, 0
    for token in data.tokens:
        s = data.sample(token, with_points=False)
        scores = 1.0 - 1e-6 * (rank + np.arange(len(s.gt_boxes)))
        rank += len(s.gt_boxes)
        out[token] = Detections.from_arrays(s.gt_boxes, scores, s.gt_labels, data.class_names)
    return out
