"""Lyft evaluation with the SDK's average precision at 3D IoU 0.5:0.95, and Kaggle submission CSVs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from regnet_explore.data.dataset import LyftData
from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.global_boxes import check_complete, detection_arrays, lidar_to_global
from regnet_explore.io import write_text_atomic

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2).tolist())
# The SDK's Box3D asserts that its corners are orthogonal to 1e-8 absolutely: a box a kilometre long fails that in
# float64 and stops the whole evaluation. The reference decoder is unbounded (exp of the size delta), so a weak
# model's low-score tail can hold such boxes; they cannot match anything and are left out of the records.
MAX_BOX_SIZE = 1000.0


def prediction_records(data: LyftData, detections: Mapping[str, Detections]) -> list[dict]:
    """Detections -> the SDK's prediction dicts (global frame; size (w, l, h); quaternion rotation; score), without
    boxes the SDK cannot represent (non-finite, or larger than ``MAX_BOX_SIZE``)."""
    check_complete(data, detections)
    records = []
    for token in data.tokens:
        boxes, scores, labels = detection_arrays(token, detections[token], data.class_names)
        sane = np.isfinite(boxes).all(axis=1) & (boxes[:, 3:6] <= MAX_BOX_SIZE).all(axis=1)
        g = lidar_to_global(boxes[sane], scores[sane], labels[sane], *data.transforms(token))
        records += [{"sample_token": token, "translation": g.translation[i].tolist(), "size": g.size[i].tolist(),
                     "rotation": g.rotation[i].tolist(), "name": data.class_names[g.labels[i]],
                     "score": float(g.scores[i])} for i in range(len(g.scores))]
    return records


def gt_records(data: LyftData) -> list[dict]:
    """Ground truth of the split as the SDK's dicts (as mmdetection3d's ``load_lyft_gts``)."""
    records = []
    for token in data.tokens:
        gt = data.ground_truth(token)
        records += [{"sample_token": token, "translation": gt.translation[i].tolist(), "size": gt.size[i].tolist(),
                     "rotation": gt.rotation[i].tolist(), "name": gt.names[i]} for i in range(len(gt.names))]
    return records


def average_precisions(gt: list[dict], predictions: list[dict]) -> tuple[list[str], np.ndarray]:
    """Class names (sorted GT names, as the SDK's ``get_class_names``) and AP (classes, 10 IoU thresholds): the SDK's
    ``get_average_precisions`` at each threshold, as mmdetection3d's ``lyft_eval`` calls it, with each prediction's
    overlaps computed once for all ten thresholds rather than once a threshold (the same numbers)."""
    from lyft_dataset_sdk.eval.detection.mAP_evaluation import get_class_names, group_by_key

    if not gt:
        raise RegNetExploreError("Lyft evaluation: the split has no ground-truth boxes")
    names = get_class_names(gt)
    gt_by_class, pred_by_class = group_by_key(gt, "name"), group_by_key(predictions, "name")
    aps = np.zeros((len(names), len(IOU_THRESHOLDS)))
    for c, name in enumerate(names):
        if name in pred_by_class:
            aps[c] = _class_average_precisions(gt_by_class[name], pred_by_class[name])
    return names, aps


def _class_average_precisions(gt: list[dict], predictions: list[dict]) -> list[float]:
    """One class's AP at each of ``IOU_THRESHOLDS``, by the SDK's ``recall_precision``: predictions in descending
    score (a stable sort), each matched greedily to its sample's ground-truth box of largest 3D IoU."""
    from lyft_dataset_sdk.eval.detection.mAP_evaluation import Box3D, get_ap, get_ious, group_by_key, wrap_in_box

    sample_gts = wrap_in_box(group_by_key(gt, "sample_token"))
    best = []  # (sample, largest IoU, the GT box that has it) per prediction, best-scored first
    for prediction in sorted(predictions, key=lambda x: x["score"], reverse=True):
        boxes = sample_gts.get(prediction["sample_token"], [])
        overlaps = get_ious(boxes, Box3D(**prediction)) if boxes else [-np.inf]
        best.append((prediction["sample_token"], np.max(overlaps), int(np.argmax(overlaps))))
    aps = []
    for threshold in IOU_THRESHOLDS:
        taken = {token: np.zeros(len(boxes)) for token, boxes in sample_gts.items()}
        tp = np.zeros(len(best))
        for i, (token, overlap, j) in enumerate(best):
            if overlap > threshold and taken[token][j] == 0:
                tp[i] = taken[token][j] = 1
        tp_sum, fp_sum = np.cumsum(tp), np.cumsum(1 - tp)
        aps.append(get_ap(tp_sum / float(len(gt)), tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(np.float64).eps)))
    return aps


def evaluate_lyft(data: LyftData, detections: Mapping[str, Detections]) -> dict:
    """mAP over classes and IoU thresholds 0.5:0.95, with ``class_AP`` {class: AP} and ``threshold_mAP``
    {iou: mAP}, and the full ``average_precisions`` table {class: [AP per threshold]}."""
    names, aps = average_precisions(gt_records(data), prediction_records(data, detections))
    return {"mAP": float(aps.mean()), "class_AP": dict(zip(names, aps.mean(1).tolist())),
            "threshold_mAP": dict(zip(IOU_THRESHOLDS, aps.mean(0).tolist())),
            "average_precisions": {n: aps[i].tolist() for i, n in enumerate(names)}}


def lidar_reach(data: LyftData, records: list[dict]) -> np.ndarray:
    """(N,) max(|x|, |y|) of each record's centre in its sample's LiDAR frame: outside a +-R m configuration when
    larger than R."""
    reach = np.zeros(len(records))
    tokens = np.array([r["sample_token"] for r in records])
    centres = np.array([r["translation"] for r in records], dtype=np.float64).reshape(-1, 3)
    for token in np.unique(tokens):
        rows = np.flatnonzero(tokens == token)
        lidar2ego, ego2global = data.transforms(str(token))
        to_lidar = np.linalg.inv(ego2global @ lidar2ego)
        xy = (centres[rows] @ to_lidar[:3, :3].T + to_lidar[:3, 3])[:, :2]
        reach[rows] = np.abs(xy).max(axis=1)
    return reach


def range_average_precisions(data: LyftData, detections: Mapping[str, Detections],
                             edges: tuple[float, ...] = (0.0, 80.0, 100.0), iou: float = 0.5) -> dict[str, dict]:
    """The SDK's AP at one IoU threshold per distance band: ground truth and predictions whose centre lies in
    [lo, hi) (``lidar_reach``), each band scored on its own. {"80-100 m": {"objects": n, "AP": {class: AP}}}."""
    from lyft_dataset_sdk.eval.detection.mAP_evaluation import get_average_precisions, get_class_names

    gt, predictions = gt_records(data), prediction_records(data, detections)
    gt_reach, pred_reach = lidar_reach(data, gt), lidar_reach(data, predictions)
    bands = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        band_gt = [r for r, d in zip(gt, gt_reach) if lo <= d < hi]
        band_pred = [r for r, d in zip(predictions, pred_reach) if lo <= d < hi]
        names = get_class_names(band_gt) if band_gt else []
        aps = get_average_precisions(band_gt, band_pred, names, iou) if band_gt else []
        bands[f"{lo:g}-{hi:g} m"] = {"objects": len(band_gt), "AP": dict(zip(names, np.asarray(aps).tolist()))}
    return bands


def range_found_share(data: LyftData, detections: Mapping[str, Detections],
                      edges: tuple[float, ...] = (0.0, 80.0, 100.0), max_distance: float = 2.0, score_thr: float = 0.1,
                      class_name: str = "car") -> dict[str, dict]:
    """Per distance band (``max(|x|, |y|)`` in the LiDAR frame) the share of ``class_name`` ground-truth boxes with a
    prediction of that class, scoring at least ``score_thr``, whose BEV centre lies within ``max_distance`` m: the
    lenient question (is it there at all?) beside the 3D-IoU metric. {"80-100 m": {"objects": n, "found": share}}."""
    label = data.class_names.index(class_name)
    reach, found = [], []
    for token in data.tokens:
        sample = data.sample(token, with_points=False)
        gt = sample.gt_boxes[sample.gt_labels == label, :2].astype(np.float64)
        det = detections[token]
        keep = (det.labels == label) & (det.scores >= score_thr)
        pred = det.boxes[keep, :2].double().cpu().numpy()
        dist = np.linalg.norm(gt[:, None] - pred[None], axis=-1) if len(pred) else np.full((len(gt), 1), np.inf)
        reach.append(np.abs(gt).max(axis=1))
        found.append(dist.min(axis=1) <= max_distance)
    reach_all, found_all = np.concatenate(reach), np.concatenate(found)
    bands = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (reach_all >= lo) & (reach_all < hi)
        bands[f"{lo:g}-{hi:g} m"] = {"objects": int(inside.sum()),
                                     "found": float(found_all[inside].mean()) if inside.any() else float("nan")}
    return bands


def write_submission_csv(data: LyftData, detections: Mapping[str, Detections], path: str | os.PathLike) -> Path:
    """Kaggle CSV: ``Id,PredictionString`` with "score x y z w l h yaw class" per box, global frame."""
    lines = ["Id,PredictionString"]
    by_token: dict[str, list[str]] = {t: [] for t in data.tokens}
    for r in prediction_records(data, detections):
        w, x, y, z = r["rotation"]
        yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
        by_token[r["sample_token"]].append(" ".join(f"{v:.4f}" for v in (r["score"], *r["translation"], *r["size"],
                                                                          yaw)) + f" {r['name']}")
    lines += [f"{t},{' '.join(parts)}" for t, parts in by_token.items()]
    return write_text_atomic("\n".join(lines) + "\n", path)
