"""A detector over a whole split, as mmdetection3d's ``tools/test.py CONFIG CHECKPOINT`` runs it.

Key frames are loaded with their sweeps by DataLoader workers while the model runs; each batch's detections are
appended to ``<out>/detections.jsonl`` (LiDAR frame, labels indexing the dataset's classes) and fsynced, so memory
stays flat in the number of frames and a killed run continues from the frames already done (``resume``). Once every
frame is done, the submission (nuScenes ``results_nusc.json``, Lyft ``submission.csv``) is written atomically from
that file and scored with the official metric; the metrics go to ``<out>/metrics.json``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from regnet_explore.data.dataset import DetectionData, LyftData, open_dataset, validation_split
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.detections_file import detections_line, done_tokens, read_detections
from regnet_explore.evaluation.lyft import evaluate_lyft, write_submission_csv
from regnet_explore.evaluation.nuscenes import evaluate_submission, write_submission
from regnet_explore.evaluation.predict import split_batches
from regnet_explore.io import write_json_atomic
from regnet_explore.settings import COUNT, COUNT_0, PROBABILITY, check_device, check_fields, within
from regnet_explore.synthetic import ensure_default_dataset

STREAM = "detections.jsonl"
RUN = "test.json"


class RandomWeightsWarning(UserWarning):
    """A run without a checkpoint: the detector's weights are random."""


@dataclass(frozen=True)
class TestConfig:
    """One run: ``data=None`` is the synthetic set of the config's dataset; ``split=None`` its validation split;
    ``limit`` the first N key frames (scored only on Lyft: nuScenes' DetectionEval needs the whole split)."""

    __test__ = False  # not a pytest class

    config: str
    checkpoint: str | None
    data: str | None = None
    version: str | None = None
    split: str | None = None
    out: str = "work_dirs/test"
    device: str = "cpu"
    batch_size: int = field(default=1, metadata=within(COUNT))
    workers: int = field(default=2, metadata=within(COUNT_0))
    limit: int | None = field(default=None, metadata=within(COUNT, optional=True))
    resume: bool = False
    score_thr: float | None = field(default=None, metadata=within(PROBABILITY, optional=True))
    progress: bool = True

    def __post_init__(self):
        """Every setting checked here, once, for the command line and the Python API alike."""
        check_fields(self)
        check_device(self.device)


@dataclass
class TestResult:
    __test__ = False

    detections: Path
    submission: Path
    metrics: dict | None  # None with a limit on nuScenes
    frames: int
    seconds: float  # the frames run now (a resumed run skips those done before)
    ran: int


def open_split(fmt: str, data: str | None, version: str | None, split: str | None, sweeps: int = 10) -> DetectionData:
    """The split to run on: the synthetic set when ``data`` is None, the version's validation split by default."""
    root = Path(data) if data is not None else ensure_default_dataset(fmt)
    whole = open_dataset(fmt, root, version, sweeps=sweeps)
    if split is None:
        split = validation_split(fmt, whole.version)
    return open_dataset(fmt, root, whole.version, split, sweeps=sweeps)


def _run_settings(cfg: TestConfig, data: DetectionData) -> dict:
    checkpoint = str(Path(cfg.checkpoint).resolve()) if cfg.checkpoint else None
    return {"config": get_config(cfg.config).name, "checkpoint": checkpoint,
            "dataroot": str(data.dataroot.resolve()), "version": data.version, "split": data.split,
            "limit": cfg.limit, "score_thr": cfg.score_thr}


def _pending(cfg: TestConfig, data: DetectionData, out: Path) -> list[str]:
    """Tokens still to run; starts the stream afresh unless resuming a run of the same settings."""
    stream, run = out / STREAM, out / RUN
    settings = _run_settings(cfg, data)
    if cfg.resume and stream.exists() and not run.exists():
        raise RegNetExploreError(f"{stream}: not written by `regnet-explore test` (no {RUN} beside it); --resume "
                                 "continues this command's own runs only: move the file away or give another --out")
    if cfg.resume and run.exists():
        old = json.loads(run.read_text())
        changed = [f"{k} {old.get(k)!r} there, {v!r} now" for k, v in settings.items() if old.get(k) != v]
        if changed:
            raise RegNetExploreError(f"{out}: --resume of a run with other settings ({'; '.join(changed)})")
        done = set(done_tokens(stream))
        return [t for t in data.tokens if t not in done]
    stream.unlink(missing_ok=True)
    for old in (out / "results_nusc.json", out / "submission.csv", out / "metrics.json"):
        old.unlink(missing_ok=True)  # a finished earlier run's outputs must not pass for this one's
    write_json_atomic(settings, run)
    return list(data.tokens)


def run_test(cfg: TestConfig) -> TestResult:
    """Run ``cfg``: stream the detections, then write the submission and score it (see the module docstring)."""
    det_cfg = get_config(cfg.config)
    data = open_split(det_cfg.dataset, cfg.data, cfg.version, cfg.split)
    if cfg.limit is not None:
        data = data.head(cfg.limit)
    model = PointPillars.from_config(det_cfg, checkpoint=cfg.checkpoint, device=cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = _pending(cfg, data, out)
    if cfg.checkpoint is None:
        warnings.warn("no checkpoint: the detector's weights are random, so its boxes and metrics mean nothing "
                      "(metrics.json says so)", RandomWeightsWarning, stacklevel=2)
    seconds, ran = 0.0, 0
    if todo:
        bar = tqdm(total=len(data), initial=len(data) - len(todo), desc="test", unit="frame",
                   disable=not cfg.progress, dynamic_ncols=True)
        start, ran = time.perf_counter(), 0
        with open(out / STREAM, "a") as stream:
            for batch in split_batches(model, data, todo, cfg.score_thr, cfg.batch_size, cfg.workers):
                stream.write("".join(detections_line(token, det) for token, det in batch))
                stream.flush()
                os.fsync(stream.fileno())
                ran += len(batch)
                bar.update(len(batch))
                bar.set_postfix(fps=f"{ran / (time.perf_counter() - start):.2f}")
        seconds = time.perf_counter() - start
        bar.close()
    detections = read_detections(out / STREAM, data.class_names)
    if isinstance(data, LyftData):
        submission = write_submission_csv(data, detections, out / "submission.csv")
        metrics = evaluate_lyft(data, detections)
    else:
        submission = write_submission(data, detections, out / "results_nusc.json")
        metrics = None if cfg.limit is not None else evaluate_submission(data, submission, out / "eval")
    if metrics is not None:
        if cfg.checkpoint is None:  # said in the file too: these numbers score an untrained network
            metrics = {**metrics, "weights": "random: no checkpoint given"}
        write_json_atomic(metrics, out / "metrics.json")
    return TestResult(out / STREAM, submission, metrics, len(data), seconds, ran)


def format_metrics(metrics: dict, dataset: str) -> str:
    """The metrics as mmdetection3d prints them: nuScenes' summary and per-class table, Lyft's per-class mAP."""
    if dataset == "lyft":
        lines = ["class                mAP@0.5:0.95"]
        lines += [f"{c:<20} {ap:.4f}" for c, ap in metrics["class_AP"].items()]
        return "\n".join(lines + [f"{'Overall':<20} {metrics['mAP']:.4f}"])
    lines = [f"mAP: {metrics['mAP']:.4f}"] + [f"{k}: {metrics[k]:.4f}" for k in ("mATE", "mASE", "mAOE", "mAVE",
                                                                                  "mAAE")]
    lines += [f"NDS: {metrics['NDS']:.4f}", "", "Per-class results:", "Object Class\tAP\tATE\tASE\tAOE\tAVE\tAAE"]
    errors = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
    for c, ap in metrics["class_AP"].items():
        tp = metrics["class_tp_errors"].get(c, {})
        lines.append(f"{c}\t{ap:.3f}\t" + "\t".join(f"{tp.get(e, float('nan')):.3f}" for e in errors))
    return "\n".join(lines)
