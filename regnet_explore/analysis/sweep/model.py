"""One model of a sweep: trained with the engine in its own directory (resuming its ``latest.pth``), scored with
the dataset's official metric, returned as its results row (``status: failed`` with the reason when it cannot be
built or trained). Self-contained, so it also runs in a pool process, a Ray task or a job of its own."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from regnet_explore.analysis.sampling import SampledNet
from regnet_explore.analysis.sweep.settings import (
    SweepConfig,
    data_root,
    iteration_plan,
    sweep_detector,
    training_geometry,
    val_root,
)
from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model, flat_metrics
from regnet_explore.io import write_json_atomic
from regnet_explore.machine import machine_fields
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.train.curves import read_log
from regnet_explore.train.engine import default_splits, train


def model_dir(cfg: SweepConfig, sample: SampledNet) -> Path:
    return Path(cfg.out) / "models" / f"{sample.space}-{sample.index}"


def run_seeds(cfg: SweepConfig) -> list[tuple[int, int | None]]:
    """(training seed, init seed) of each of a model's ``cfg.runs`` runs: run r of training seed t is seed
    t * runs + r (likewise an init seed), so one run is the 1-run sweep of that seed and the runs of two training
    seeds share none."""
    t = cfg.seed if cfg.train_seed is None else cfg.train_seed
    return [(t * cfg.runs + r, None if cfg.init_seed is None else cfg.init_seed * cfg.runs + r)
            for r in range(cfg.runs)]


def _checkpoint_iter(path: Path) -> int:
    return int(read_checkpoint(path).meta["iter"]) if path.exists() else 0


def rank() -> int:
    """This process's rank under torchrun (0 outside it)."""
    return int(os.environ.get("RANK", "0"))


def train_one(cfg: SweepConfig, sample: SampledNet, device: str | None = None, worker: int = 0) -> dict | None:
    """Train and evaluate one sampled network in :func:`model_dir` (resuming from its ``latest.pth``); returns its
    results row. A model that cannot be built or trained (out of memory, a diverging loss, ...) returns a row with
    ``status: failed`` and the reason instead of raising, so the sweep goes on. Self-contained, so it also runs as a
    Ray task or a job of its own; under torchrun every rank trains and rank 0 alone evaluates and returns the row
    (the others None)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    try:
        return _train_and_score(cfg, sample, device, worker)
    except Exception as e:  # noqa: BLE001 - any failure of this one model is recorded, the sweep goes on
        if rank() != 0:
            return None
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        return {**sample.to_dict(), "status": "failed", "reason": reason, "wall_s": time.perf_counter() - start,
                "worker": worker, "device": device, **machine_fields(device)}


# summed over a model's runs; the other numbers of a run's row (the metrics, error, loss, speed) are averaged
_RUN_TOTALS = ("train_s", "eval_s", "wall_s")


def _train_and_score(cfg: SweepConfig, sample: SampledNet, device: str, worker: int) -> dict | None:
    """The model's row: its one run's, or with ``cfg.runs`` > 1 the mean of its runs (each in ``run-<r>/`` of the
    model's directory, its row kept in ``row.json`` so a rerun resumes at the first unfinished run)."""
    seeds = run_seeds(cfg)
    if cfg.runs == 1:
        return _train_and_score_run(cfg, sample, device, worker, model_dir(cfg, sample), *seeds[0])
    rows = []
    for r, (seed, init_seed) in enumerate(seeds):
        work = model_dir(cfg, sample) / f"run-{r}"
        if (work / "row.json").exists():  # scored before a kill: nothing of it is trained again
            try:
                row = json.loads((work / "row.json").read_text())
            except ValueError as e:
                raise RegNetExploreError(f"{work / 'row.json'}: not a run's row ({e}); delete it to rerun") from None
            rows.append({**row, "resumed_from": row["iterations"]})
            continue
        row = _train_and_score_run(cfg, sample, device, worker, work, seed, init_seed)
        if row is None:  # a torchrun rank other than 0
            continue
        write_json_atomic(row, work / "row.json")
        rows.append(row)
    if rank() != 0:
        return None
    return _mean_row(rows, set(sample.to_dict()))


def _mean_row(rows: list[dict], network: set[str]) -> dict:
    """One row for a model's runs: the network (keys ``network``) and bookkeeping of the first, the run timings
    summed, every other number averaged, each run's error in ``run_errors``."""
    first = rows[0]
    mean = {k: float(np.mean([r[k] for r in rows])) for k, v in first.items()
            if isinstance(v, float) and k not in network and k not in _RUN_TOTALS}
    totals = {k: float(sum(r[k] for r in rows)) for k in _RUN_TOTALS}
    return {**first, **mean, **totals, "resumed_from": max(r["resumed_from"] for r in rows), "runs": len(rows),
            "run_errors": [r["error"] for r in rows]}


def _train_and_score_run(cfg: SweepConfig, sample: SampledNet, device: str, worker: int, work: Path, seed: int,
                         init_seed: int | None) -> dict | None:
    det = sweep_detector(cfg, sample)
    root = data_root(cfg)
    recipe = cfg.train
    batch = recipe.batch_size or det.samples_per_gpu
    tc = dataclasses.replace(recipe, detector=det, data=root, version=cfg.version, work_dir=str(work),
                             batch_size=batch, seed=seed, init_seed=init_seed, evaluate=False, resume=True,
                             checkpoint_interval=0, progress=False, device=device)
    train_split, val_split = default_splits(det, tc, root, cfg.version)
    scoring = val_root(cfg)
    if scoring != root:  # another synthetic set: its own version folder and split names
        _, val_split = default_splits(det, tc, scoring, None)
    n_train = len(open_dataset(det.dataset, root, cfg.version, train_split, sweeps=recipe.sweeps))
    global_batch = batch * int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: a batch per process
    epochs, per_epoch = iteration_plan(cfg.budget, n_train, global_batch)
    tc = dataclasses.replace(tc, epochs=epochs, max_iters_per_epoch=per_epoch)
    first_iter = _checkpoint_iter(work / "latest.pth")
    start = time.perf_counter()
    result = train(tc)
    train_s = time.perf_counter() - start
    if rank() != 0:
        return None
    iterations = _checkpoint_iter(result.checkpoint)
    # scored as the engine scores: a centred crop on the objects inside it, random windows on the full range
    centred = recipe.crop is not None and recipe.crop_placement == "center"
    model = PointPillars.from_config(training_geometry(cfg, det) if centred else det, result.checkpoint, device)
    val = open_dataset(det.dataset, scoring, cfg.version if scoring == root else None, val_split, sweeps=recipe.sweeps)
    scored = evaluate_model(model, val, work / "eval", class_range=recipe.crop if centred else None)
    metrics = flat_metrics(scored)
    if cfg.classes is not None:  # the devkit scores every class; the others were not trained
        metrics = {k: v for k, v in metrics.items() if not k.startswith("AP_") or k[3:] in cfg.classes}
    # nuScenes: each class's AP at each centre-distance threshold, e.g. AP_car@0.5 (the strictest)
    metrics.update({f"AP_{c}@{t:g}": float(ap) for c, by_t in scored.get("class_AP_dist", {}).items()
                    if f"AP_{c}" in metrics for t, ap in by_t.items()})
    eval_s = time.perf_counter() - start - train_s
    losses = [r["loss"] for r in read_log(work / "train.log.json") if r.get("mode") == "train"]
    return {**sample.to_dict(), "status": "ok", **metrics, "error": 1.0 - metrics.get(cfg.metric, math.nan),
            "loss": losses[-1] if losses else math.nan, "iterations": iterations, "train_s": train_s,
            "eval_s": eval_s, "wall_s": train_s + eval_s,
            "samples_per_s": (iterations - first_iter) * global_batch / train_s, "resumed_from": first_iter,
            "worker": worker, "device": device, **machine_fields(device)}
