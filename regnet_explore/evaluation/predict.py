"""A detector over a dataset split, scored with the dataset's official metric.

:func:`split_batches` is the one split runner: key frames loaded with their sweeps (in DataLoader workers, or inline)
while the model runs batches of them, detections mapped to the dataset's classes. ``regnet-explore test``
(:mod:`evaluation.testing`) streams its batches to a detections file; :func:`predict_split` collects them for
:func:`evaluate_model` (training's validation, sweeps, the demo, notebooks), which writes the submission and scores
it (nuScenes ``DetectionEval`` through :mod:`evaluation.nuscenes`, Lyft's mAP through :mod:`evaluation.lyft`);
:func:`flat_metrics` flattens the result into the scalars a log or a results table holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from regnet_explore.data.dataset import DetectionData, LyftData
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.protocol import Detector
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.lyft import evaluate_lyft
from regnet_explore.evaluation.nuscenes import evaluate_nuscenes


def label_map(from_names: Sequence[str], to_names: Sequence[str]) -> np.ndarray:
    """Index of each of ``from_names`` in ``to_names``, -1 where absent (a detector trained on a class subset)."""
    return np.array([to_names.index(n) if n in to_names else -1 for n in from_names], dtype=np.int64)


class _Frames(torch.utils.data.Dataset):
    """(token, (N, 4) network points) of the key frames to run, loaded in worker processes."""

    def __init__(self, data: DetectionData, tokens: Sequence[str]):
        self.data, self.tokens = data, list(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return self.tokens[i], self.data.sample(self.tokens[i]).network_points()


def _as_list(items: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    return items


def split_batches(model: Detector, data: DetectionData, tokens: Sequence[str] | None = None,
                  score_thr: float | None = None, batch_size: int = 1,
                  workers: int = 0) -> Iterator[list[tuple[str, Detections]]]:
    """Batches of (token, Detections on the CPU, labels indexing ``data.class_names``) for ``tokens`` (default:
    every key frame of ``data``), ``batch_size`` clouds a forward pass, frames loaded by ``workers`` processes."""
    to_data = torch.as_tensor(label_map(model.cfg.class_names, data.class_names))
    if (to_data < 0).any():
        raise RegNetExploreError(f"{model.cfg.name} predicts classes that {data.version} does not have: "
                                 f"{[c for c, i in zip(model.cfg.class_names, to_data.tolist()) if i < 0]}")
    frames = _Frames(data, data.tokens if tokens is None else tokens)
    loader = torch.utils.data.DataLoader(frames, batch_size=batch_size, num_workers=workers, collate_fn=_as_list,
                                         prefetch_factor=2 if workers else None)
    for batch in loader:
        dets = model.predict([points for _, points in batch], score_thr=score_thr)
        yield [(token, Detections(det.boxes.cpu(), det.scores.cpu(), to_data[det.labels.cpu()],
                                  tuple(data.class_names))) for (token, _), det in zip(batch, dets, strict=True)]


def predict_split(model: Detector, data: DetectionData, score_thr: float | None = None,
                  progress: bool = False) -> dict[str, Detections]:
    """Detections of ``model`` for every key frame of ``data`` (token -> Detections on the CPU), their labels mapped
    to ``data.class_names``."""
    out = {}
    with tqdm(total=len(data), desc="inference", leave=False, disable=not progress) as bar:
        for batch in split_batches(model, data, score_thr=score_thr):
            out.update(batch)
            bar.update(len(batch))
    return out


def evaluate_model(model: Detector, data: DetectionData, output_dir: str | Path,
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


__all__ = ["evaluate_model", "flat_metrics", "label_map", "predict_split", "score_detections", "split_batches"]
