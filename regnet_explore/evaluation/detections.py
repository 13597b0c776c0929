"""Detector outputs (LiDAR frame) -> global-frame boxes in the devkits' conventions, plus atomic file writing.

A detection dict per sample: ``boxes`` (K, 7 or 9) = x, y, z_bottom, l, w, h, yaw (from +x toward +y), [vx, vy]
in the key frame's LiDAR frame; ``scores`` (K,); ``labels`` (K,) indices into the dataset's class names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from regnet_explore.data.geometry import matrix_to_quaternion, quaternion_multiply, yaw_to_quaternion
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


def check_detection(token: str, det: Mapping, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (boxes (K, 9) with zero velocity where absent, scores (K,), labels (K,)) of one sample."""
    try:
        boxes = np.asarray(det["boxes"], dtype=np.float64)
        scores = np.asarray(det["scores"], dtype=np.float64).reshape(-1)
        labels = np.asarray(det["labels"]).reshape(-1).astype(np.int64)
    except KeyError as e:
        raise RegNetExploreError(f"detections of sample {token}: missing key {e} (need boxes, scores, labels)"
                                 ) from None
    if boxes.ndim != 2 or boxes.shape[1] not in (7, 9) or len(boxes) != len(scores) or len(boxes) != len(labels):
        raise RegNetExploreError(f"detections of sample {token}: boxes {boxes.shape}, scores {scores.shape}, labels "
                                 f"{labels.shape}; need (K, 7 or 9), (K,), (K,)")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise RegNetExploreError(f"detections of sample {token}: labels must lie in [0, {n_classes})")
    if boxes.shape[1] == 7:
        boxes = np.concatenate([boxes, np.zeros((len(boxes), 2))], axis=1)
    return boxes, scores, labels


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


def oracle_detections(data) -> dict[str, dict[str, np.ndarray]]:
    """Ground truth of every sample of ``data`` as detections (the perfect detector).

    Scores are distinct (decreasing from 1 in sample order): the devkit interpolates TP errors over the
    confidence, which collapses to a single match when every score ties.
    """
    out, rank = {}, 0
    for token in data.tokens:
        s = data.sample(token, with_points=False)
        scores = 1.0 - 1e-6 * (rank + np.arange(len(s.gt_boxes)))
        rank += len(s.gt_boxes)
        out[token] = {"boxes": s.gt_boxes, "scores": scores, "labels": s.gt_labels}
    return out
