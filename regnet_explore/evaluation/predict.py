"""A detector over a dataset split, scored with the dataset's official metric.

:func:`predict_split` runs the detector on every key frame of a split; :func:`evaluate_model` writes the submission
and scores it (nuScenes ``DetectionEval`` through :mod:`evaluation.nuscenes`, Lyft's mAP through
:mod:`evaluation.lyft`); :func:`flat_metrics` flattens the result into the scalars a log or a results table holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from regnet_explore.data.dataset import DetectionData, LyftData
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.lyft import evaluate_lyft
from regnet_explore.evaluation.nuscenes import evaluate_nuscenes


def label_map(from_names: Sequence[str], to_names: Sequence[str]) -> np.ndarray:
    """Index of each of ``from_names`` in ``to_names``, -1 where absent (a detector trained on a class subset)."""
    return np.array([to_names.index(n) if n in to_names else -1 for n in from_names], dtype=np.int64)


def predict_split(model: PointPillars, data: DetectionData, score_thr: float | None = None,
                  progress: bool = False) -> dict[str, Detections]:
    """Detections of ``model`` for every sample of ``data`` (token -> Detections on the CPU), their labels mapped
    to ``data.class_names``."""
    to_data = torch.as_tensor(label_map(model.cfg.class_names, data.class_names))
    if (to_data < 0).any():
        raise RegNetExploreError(f"{model.cfg.name} predicts classes that {data.version} does not have: "
                                 f"{[c for c, i in zip(model.cfg.class_names, to_data.tolist()) if i < 0]}")
    out = {}
    tokens = data.tokens
    if progress:
        tokens = tqdm(tokens, desc="inference", leave=False)
    for token in tokens:
        det = model.predict(data.sample(token).network_points(), score_thr=score_thr).cpu()
        out[token] = Detections(det.boxes, det.scores, to_data[det.labels], tuple(data.class_names))
    return out


def evaluate_model(model: PointPillars, data: DetectionData, output_dir: str | Path,
                   class_range: float | None = None, score_thr: float | None = None) -> dict:
    """The official metric of the dataset (nuScenes DetectionEval / Lyft mAP) of ``model`` on ``data``'s split.

    ``score_thr`` replaces the config's test threshold (0: every box the head keeps, e.g. to score an untrained
    model's boxes rather than an empty submission, which nuScenes' DetectionEval cannot evaluate).
    ``class_range`` (m, nuScenes) limits the evaluated boxes to that distance, for a model on a cropped range.
    """
    return score_detections(data, predict_split(model, data, score_thr), output_dir, class_range)


def score_detections(data: DetectionData, detections: dict[str, Detections], output_dir: str | Path,
                     class_range: float | None = None) -> dict:
    """The official metric of ``data``'s dataset for detections of its samples (see :func:`evaluate_model`)."""
    if isinstance(data, LyftData):
        return evaluate_lyft(data, detections)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return evaluate_nuscenes(data, detections, output_dir, class_range=class_range)


def flat_metrics(metrics: dict) -> dict:
    """Scalars of a metrics dict, per-class APs flattened as ``AP_<class>`` (NaN/inf left out)."""
    flat = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    flat.update({f"AP_{c}": float(v) for c, v in metrics.get("class_AP", {}).items()})
    return {k: v for k, v in flat.items() if math.isfinite(v)}


__all__ = ["evaluate_model", "flat_metrics", "label_map", "predict_split", "score_detections"]
