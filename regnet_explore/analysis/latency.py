"""Measured latency as a design-space axis: every model of a sweep built as the deployable detector and timed on
one reference frame, per stage and precision, into a table beside the sweep's.

The deployable detector is the base config (the full range and grid, its neck and head, all its classes) with the
sampled backbone, BatchNorm folded (:meth:`PointPillars.fuse`), random weights: latency does not depend on the
values of the weights except through how many boxes reach NMS, and the reference init of the classifier's bias
(prior probability 0.01) keeps that near zero for every model alike. Each model is timed on one frame, ``warmup``
passes then the median of ``frames`` (per stage by :func:`detection.timing.stage_timer`).

Table (``latency.jsonl``, one JSON row a line, appended with fsync): the model's ``space`` and ``index``, the
``precision``, ``status`` (``ok`` or ``failed`` with ``reason``), ``total_ms`` and ``<stage>_ms`` (medians), the
backbone's complexity on the deployment grid (``backbone_flops``, ``backbone_acts``, ``backbone_params``), and the
machine (:func:`machine.machine_fields`), the point count, the date and the ``run`` (the UTC time the command
started). A model timed in a precision on a device kind is skipped on a rerun. Times of separate runs on one device
kind differ by a few per cent (the machine's state, another session's host): a table meant for comparison is timed
in one run, and a run that adds to an earlier run's rows warns (:class:`MixedRunsWarning`).
"""

from __future__ import annotations

import datetime
import re
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regnet_explore.analysis.shipped import RESULTS_DIR
from regnet_explore.analysis.sweep import DEFAULT_DETECTOR, load_results, read_rows
from regnet_explore.detection.configs import DetectorConfig, get_config, with_backbone
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.timing import STAGES, stage_timer
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import jsonl_appender
from regnet_explore.machine import device_name, machine_fields
from regnet_explore.regnet.complexity import Complexity
from regnet_explore.regnet.design import RegNetStages
from regnet_explore.settings import COUNT, COUNT_0, check_fields, within

PRECISIONS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")}
REFERENCE_SWEEPS = 10  # the reference configs' LoadPointsFromMultiSweeps
SHIPPED_LATENCY = RESULTS_DIR / "latency"  # the shipped study's tables, one per device kind


@dataclass(frozen=True)
class LatencyConfig:
    """``sweeps``: sweep directories whose finished models are timed; ``out``: the latency table (a file)."""

    sweeps: tuple[str, ...]
    out: str
    precisions: tuple[str, ...] = ("fp32", "bf16")
    device: str = "cpu"
    detector: str = DEFAULT_DETECTOR
    warmup: int = field(default=2, metadata=within(COUNT_0))
    frames: int = field(default=7, metadata=within(COUNT))
    points: str | None = None  # a (N, >=4) float32 .npy or nuScenes .bin cloud; None: reference_cloud()
    compile: bool = False
    # the first N models of each sweep (by index)
    limit: int | None = field(default=None, metadata=within(COUNT, optional=True))


def device_slug(device: str) -> str:
    """A file name for a device kind, e.g. ``amd-epyc-family-25-model-17-avx512``."""
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def reference_cloud(detector: DetectorConfig) -> tuple[torch.Tensor, str]:
    """The densest validation key frame of the default synthetic set of the detector's dataset with its 10 sweeps,
    as the network sees it; and where it came from."""
    from regnet_explore.data.dataset import open_dataset
    from regnet_explore.synthetic import ensure_synthetic

    root = ensure_synthetic(detector.dataset)
    split = "mini_val" if detector.dataset == "nuscenes" else "val"
    data = open_dataset(detector.dataset, root, None, split, sweeps=REFERENCE_SWEEPS)
    frames = [data.sample(i) for i in range(len(data))]
    densest = max(frames, key=lambda s: len(s.points))
    source = f"{root.name} {split} {densest.token} ({REFERENCE_SWEEPS} sweeps)"
    return torch.from_numpy(densest.network_points()), source


def load_cloud(path: str, width: int) -> torch.Tensor:
    """A point cloud file: ``.npy`` (N, C) or a nuScenes-style ``.bin`` of float32 rows of 5; the first ``width``
    columns."""
    p = Path(path)
    try:
        values = np.load(p) if p.suffix == ".npy" else np.fromfile(p, dtype=np.float32).reshape(-1, 5)
    except (OSError, ValueError) as e:
        raise RegNetExploreError(f"{path}: not a point cloud (.npy of (N, C) or .bin of float32 rows of 5): {e}") \
            from None
    if values.ndim != 2 or values.shape[1] < width or not len(values):
        raise RegNetExploreError(f"{path}: need (N, >= {width}) points, got shape {values.shape}")
    return torch.from_numpy(np.ascontiguousarray(values[:, :width], dtype=np.float32))


def row_stages(row: dict) -> RegNetStages:
    """The backbone a results row describes (a table's missing SE ratio reads as NaN)."""
    se = row.get("se_ratio")
    return RegNetStages(widths=tuple(row["stage_widths"]), depths=tuple(row["stage_depths"]),
                        group_widths=tuple(row["stage_group_widths"]), bot_muls=tuple(row["stage_bot_muls"]),
                        se_ratio=None if se is None or se != se else se,  # NaN != NaN
                        pre_adjust_widths=tuple(row.get("stage_pre_adjust_widths") or row["stage_widths"]))


def deployable(detector: str, row: dict) -> DetectorConfig:
    """The base detector with the row's backbone."""
    return with_backbone(get_config(detector), row_stages(row), name=f"{detector}@{row['space']}-{row['index']}")


def backbone_complexity(cfg: DetectorConfig) -> dict[str, int]:
    """The backbone's FLOPs, activations and parameters on the detector's own BEV grid."""
    cx = Complexity(*cfg.bev_shape)
    cfg.backbone.complexity(cx, [(cx.h, cx.w)])
    return {"backbone_flops": cx.flops, "backbone_acts": cx.acts, "backbone_params": cx.params}


def time_frames(model: PointPillars, points: torch.Tensor, warmup: int, frames: int) -> dict[str, float]:
    """Median milliseconds per stage and in total over ``frames`` passes after ``warmup``."""
    with torch.inference_mode():
        for _ in range(warmup):
            model.predict(points)
        runs = []
        for _ in range(frames):
            with stage_timer(model) as t:
                start = time.perf_counter()
                model.predict(points)
                total = time.perf_counter() - start
            runs.append({**t, "total": total})
    return {f"{k}_ms": 1e3 * statistics.median(r[k] for r in runs) for k in (*STAGES, "total")}


def time_model(cfg: LatencyConfig, row: dict, precision: str, points: torch.Tensor) -> dict:
    """One model in one precision: its latency row (``failed`` with the reason when it cannot be built or run)."""
    from regnet_explore.deploy.runtime import compile_dense

    key = {"space": row["space"], "index": int(row["index"]), "precision": precision}
    try:
        det = deployable(cfg.detector, row)
        torch.manual_seed(0)
        model = PointPillars.from_config(det, device=cfg.device)  # fused: the inference form
        model.set_precision(precision)
        if cfg.compile:
            compile_dense(model)
        timings = time_frames(model, points.to(cfg.device), cfg.warmup, cfg.frames)
        return {**key, "status": "ok", **timings, **backbone_complexity(det)}
    except Exception as e:  # noqa: BLE001 - a model that cannot be built or run here gets its row, the rest go on
        return {**key, "status": "failed", "reason": f"{type(e).__name__}: {e}".splitlines()[0][:300]}


def done_keys(path: Path, device: str) -> set[tuple[str, int, str]]:
    """(space, index, precision) of the models timed on this device kind in the table."""
    if not path.exists():
        return set()
    here = device_name(device)
    return {(r["space"], int(r["index"]), r["precision"]) for r in read_rows(path)
            if r.get("device_name") == here and r.get("status") == "ok"}


def check(cfg: LatencyConfig) -> None:
    device = torch.device(cfg.device)
    allowed = PRECISIONS.get(device.type, ())
    bad = [p for p in cfg.precisions if p not in allowed]
    if bad or not cfg.precisions:
        raise RegNetExploreError(f"precisions {list(cfg.precisions)}: on {device.type} give some of "
                                 f"{', '.join(allowed)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RegNetExploreError(f"device {cfg.device}: CUDA is not available here")
    check_fields(cfg)
    for sweep in cfg.sweeps:
        if not any(Path(sweep).glob("results*.jsonl")):
            raise RegNetExploreError(f"{sweep}: no sweep results table (results*.jsonl) there")


class MixedRunsWarning(UserWarning):
    """A latency run adds timings to a table that holds this device kind's timings of an earlier run."""


def run_latency(cfg: LatencyConfig, on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Time every finished model of ``cfg.sweeps`` in each precision not yet in ``cfg.out`` for this device kind;
    returns the whole table."""
    check(cfg)
    get_config(cfg.detector)
    if cfg.points is not None:
        points, source = load_cloud(cfg.points, 4), cfg.points
    else:
        points, source = reference_cloud(get_config(cfg.detector))
    out = Path(cfg.out)
    done = done_keys(out, cfg.device)
    models = [load_results(s) for s in cfg.sweeps]
    if cfg.limit is not None:
        models = [t.nsmallest(cfg.limit, "index") for t in models]
    todo = [(row, p) for t in models for row in t.to_dict("records") for p in cfg.precisions
            if (row["space"], int(row["index"]), p) not in done]
    adding = {p for _, p in todo}
    joined = [key for key in done if key[2] in adding]  # the report keeps precisions apart
    if joined:
        warnings.warn(f"{out}: {len(todo)} timings join {len(joined)} of this device kind and precision from an "
                      "earlier run; times of separate runs differ by a few per cent (5 % seen on one CPU kind between "
                      "two sessions): to compare models, time them all in one run (a new --out)", MixedRunsWarning,
                      stacklevel=2)
    now = datetime.datetime.now(datetime.timezone.utc)
    context = {**machine_fields(cfg.device), "points": len(points), "cloud": source, "detector": cfg.detector,
               "compile": cfg.compile, "warmup": cfg.warmup, "frames": cfg.frames,
               "date": now.date().isoformat(), "run": now.isoformat(timespec="seconds")}
    with jsonl_appender(out, "another latency run is writing it; wait for it to finish or stop it") as write:
        for row, precision in todo:
            timed = {**time_model(cfg, row, precision, points), **context}
            write(timed)
            if on_row is not None:
                on_row(timed)
    return load_latency(out)


def load_latency(path: str | Path) -> pd.DataFrame:
    """A latency table, one row per (model, precision, device kind): the last ok row of each, else its failure."""
    path = Path(path)
    if not path.is_file():
        raise RegNetExploreError(f"{path}: no latency table")
    rows: dict[tuple, dict] = {}
    for r in read_rows(path):
        key = (r["space"], int(r["index"]), r["precision"], r.get("device_name"))
        if key not in rows or r.get("status") == "ok" or rows[key].get("status") != "ok":
            rows[key] = r
    return pd.DataFrame(list(rows.values()))


__all__ = ["PRECISIONS", "SHIPPED_LATENCY", "LatencyConfig", "MixedRunsWarning", "backbone_complexity", "deployable",
           "device_slug", "load_cloud", "load_latency", "reference_cloud", "row_stages", "run_latency", "time_frames",
           "time_model"]
