"""Design-space sweeps: sample backbones from a design space, train each briefly in PointPillars, tabulate the errors.

The RegNet paper's method (Radosavovic et al. 2020, section 2): draw n networks from a design space, train each with
the same short recipe, and compare the error distributions of spaces. Here a sweep is the seeded, prefix-stable
stream of :func:`sampling.sample_space`; every model gets the base detector with its backbone swapped in, the same
data order and iteration budget, and the dataset's official metric (the engine's evaluation). Layout of ``out``::

    sweep.json                    the settings (those that change results are pinned: a rerun must match them)
    results.jsonl                 one row per finished model (a shard writes results.shard-I-of-N.jsonl)
    models/<space>-<index>/       the engine's work dir: latest.pth, train.log.json, curves.png, eval/
    models/<space>-<index>/run-<r>/   with ``runs`` > 1: one such work dir a run, and its scored row.json

A row is appended as one line with flush + fsync, by the one process that writes the table, once its model is
evaluated: a kill leaves the whole row or none (a torn last line is ignored and cut on the next run). Rerunning the
same command skips the models in the table, and a model killed while training resumes from its ``latest.pth``.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regnet_explore.analysis.sampling import SPACES, BackboneInput, SampledNet, SampleReport, sample_space
from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.checkpoint import read_checkpoint
from regnet_explore.detection.configs import DetectorConfig, FPNNeckConfig, get_config, with_backbone
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.window import crop_config
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model, flat_metrics
from regnet_explore.io import jsonl_appender, write_json_atomic
from regnet_explore.machine import device_name, machine_fields
from regnet_explore.synthetic import ensure_synthetic
from regnet_explore.train.curves import read_log
from regnet_explore.train.engine import TrainConfig, default_splits, train

DEFAULT_DETECTOR = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
# SweepConfig fields that change a model's row; a sweep directory refuses to continue with others
RESULT_FIELDS = ("space", "seed", "train_seed", "init_seed", "runs", "detector", "data", "synthetic", "val_synthetic",
                 "version", "budget", "batch_size", "lr", "lr_schedule", "warmup_iters", "crop", "crop_placement",
                 "sweeps", "classes", "neck_channels", "encoder_channels", "max_points", "pretrained", "flops",
                 "params", "num_stages", "metric")
BACKENDS = ("local", "ray")
# The proxy task (``regnet-explore sweep --proxy``; each choice and its measurements: docs/sweeps.md): car detection
# in a +-16 m window (128 x 128 pillars) of one LiDAR sweep; trained on the 512 training key frames of a synthetic
# nuScenes set of 160 scenes, scored on the 512 validation key frames of one of 640 scenes; a 64-wide FPN and a
# one-layer pillar encoder with 20 points per pillar; batch 1, 512 iterations (one epoch), lr 2e-3 after 50 warm-up
# iterations, cosine to 0; backbones of 0.2-0.8 GFLOPs on that grid; error = 1 - nuScenes AP of cars
# (DetectionEval, within the window).
PROXY: dict = dict(synthetic=(160, 4), val_synthetic=(640, 4), crop=16.0, sweeps=1, classes=("car",),
                   neck_channels=64, encoder_channels=(64,), max_points=20, batch_size=1, budget=512, lr=2e-3,
                   lr_schedule="cosine", warmup_iters=50, flops=(0.2e9, 0.8e9), metric="AP_car")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class SweepConfig:
    """One sweep. ``flops`` / ``params``: (low, high) windows of the backbone's complexity (multiply-adds and
    parameters, pycls rules) on the training BEV grid. ``metric``: ``mAP``, ``NDS`` or ``AP_<class>``; the error
    is ``1 - metric``. ``shard=(i, n)`` trains the models whose index is i modulo n."""

    space: str = "regnetx"
    samples: int = 32
    seed: int = 0  # sampling seed, and the training seed unless train_seed is given
    train_seed: int | None = None  # the same networks trained from other initial weights and data order
    init_seed: int | None = None  # the same networks from other initial weights alone, on the same data order
    runs: int = 1  # training runs a model (training seeds t*runs .. t*runs+runs-1), its row their mean
    detector: str = DEFAULT_DETECTOR
    data: str | None = None  # dataroot; None: a synthetic set of the detector's dataset
    synthetic: tuple[int, int] | None = None  # that set's (scenes, key frames); None: the default mini set
    val_synthetic: tuple[int, int] | None = None  # score on this synthetic set's validation split (None: the same set)
    version: str | None = None
    budget: int = 400  # training iterations per model
    batch_size: int | None = None  # None: the detector config's samples_per_gpu
    lr: float | None = None  # None: the engine's reference lr (1e-3)
    lr_schedule: str = "step"  # the engine's: 'step' (the reference) or 'cosine' (pycls's sweeps)
    warmup_iters: int | None = None  # None: a tenth of the budget
    crop: float | None = None
    crop_placement: str = "center"
    sweeps: int = 10
    # the detector around each backbone: a class subset, the FPN width, the pillar encoder's layers and points per
    # pillar (None: the base detector's)
    classes: tuple[str, ...] | None = None
    neck_channels: int | None = None
    encoder_channels: tuple[int, ...] | None = None
    max_points: int | None = None
    pretrained: str | None = None  # ImageNet weights loaded into every backbone where names and shapes match
    flops: tuple[float, float] | None = None
    params: tuple[float, float] | None = None
    num_stages: int = 4
    metric: str = "mAP"
    out: str = "sweeps/run"
    workers: int = 1
    devices: tuple[str, ...] = ()  # worker i trains on devices[i % len]; empty: cuda if available, else cpu
    shard: tuple[int, int] = (0, 1)
    backend: str = "local"  # 'local' (a process pool of `workers`) or 'ray' (tasks on a Ray cluster)
    address: str | None = None  # Ray: the cluster to join; None: a local Ray instance
    cpus_per_model: int = 1  # Ray: CPUs each model's task reserves (and its torch threads)
    gpus_per_model: float = 0  # Ray: GPUs each model's task reserves (> 0: trains on "cuda")
    max_retries: int = 3  # Ray: reruns of a model whose worker died (preempted, killed), each resuming latest.pth
    retry_failed: bool = False  # train again the models whose row says status 'failed'


# --- settings ---------------------------------------------------------------------------------------------------


def normalize(cfg: SweepConfig) -> SweepConfig:
    """Checked settings with the detector's full name and an absolute data path (so reruns compare equal)."""
    base = get_config(cfg.detector)
    if cfg.space not in SPACES:
        raise RegNetExploreError(f"unknown design space {cfg.space!r}: use one of {', '.join(SPACES)}")
    for name in ("samples", "budget", "workers", "runs"):
        if not (isinstance(getattr(cfg, name), int) and getattr(cfg, name) >= 1):
            raise RegNetExploreError(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
    i, n = cfg.shard
    if not 0 <= i < n:
        raise RegNetExploreError(f"shard {i}/{n}: need 0 <= I < N")
    if cfg.workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RegNetExploreError("workers > 1 inside a torchrun job: give each model the whole job (--workers 1)")
    if cfg.crop_placement not in ("center", "random"):
        raise RegNetExploreError(f"crop_placement must be 'center' or 'random', got {cfg.crop_placement!r}")
    if cfg.backend not in BACKENDS:
        raise RegNetExploreError(f"backend {cfg.backend!r}: use one of {', '.join(BACKENDS)}")
    classes = tuple(cfg.classes) if cfg.classes is not None else None
    unknown = [c for c in classes or () if c not in base.class_names]
    if unknown or classes == ():
        raise RegNetExploreError(f"classes {list(classes or ())}: give a non-empty subset of {base.name}'s classes "
                                 f"({', '.join(base.class_names)})")
    metrics = ["mAP"] + (["NDS"] if base.dataset == "nuscenes" else []) + [f"AP_{c}" for c in classes or
                                                                            base.class_names]
    if cfg.metric not in metrics:
        raise RegNetExploreError(f"metric {cfg.metric!r} is not reported on {base.dataset}"
                                 f"{' for these classes' if classes else ''}: use one of {', '.join(metrics)}")
    if cfg.data is not None and (cfg.synthetic is not None or cfg.val_synthetic is not None):
        raise RegNetExploreError("give a dataroot or the size of a synthetic set, not both")
    data = str(Path(cfg.data).resolve()) if cfg.data is not None else None
    if cfg.pretrained is not None and not Path(cfg.pretrained).is_file():
        raise RegNetExploreError(f"{cfg.pretrained}: no such pretrained checkpoint")
    pretrained = str(Path(cfg.pretrained).resolve()) if cfg.pretrained is not None else None
    tuples = {name: tuple(getattr(cfg, name)) for name in ("synthetic", "val_synthetic", "encoder_channels")
              if getattr(cfg, name) is not None}
    return dataclasses.replace(cfg, detector=base.name, data=data, pretrained=pretrained, devices=tuple(cfg.devices),
                               classes=classes, shard=(int(i), int(n)), **tuples)


def pin_settings(cfg: SweepConfig) -> None:
    """Write ``out/sweep.json``, or refuse when the one there differs in a setting that changes results."""
    path = Path(cfg.out) / "sweep.json"
    new = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as read back
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError as e:
            raise RegNetExploreError(f"{path}: not a sweep settings file ({e})") from None
        # a field added since that sweep was made holds its default there
        defaults = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
        diff = [f"{k} {old.get(k, defaults[k])!r} there, {new[k]!r} now" for k in RESULT_FIELDS
                if old.get(k, defaults[k]) != new[k]]
        if diff:
            raise RegNetExploreError(f"{cfg.out} holds a sweep with other settings ({'; '.join(diff)}): rerun with "
                                     "the settings of its sweep.json, or give another --out")
    write_json_atomic(new, path)


def data_root(cfg: SweepConfig) -> str:
    """The dataroot, generating the synthetic set on first use."""
    if cfg.data is not None:
        return cfg.data
    scenes, keyframes = cfg.synthetic or (None, None)
    return str(ensure_synthetic(get_config(cfg.detector).dataset, scenes, keyframes))


def val_root(cfg: SweepConfig) -> str:
    """The dataroot whose validation split scores the models: ``cfg.val_synthetic``'s set, else :func:`data_root`."""
    if cfg.val_synthetic is None:
        return data_root(cfg)
    return str(ensure_synthetic(get_config(cfg.detector).dataset, *cfg.val_synthetic))


def base_detector(cfg: SweepConfig) -> DetectorConfig:
    """The detector every sampled backbone goes into: ``cfg.detector`` with the sweep's class subset, neck width,
    pillar encoder and points per pillar."""
    det = get_config(cfg.detector)
    if cfg.classes is not None:
        det = dataclasses.replace(det, class_names=tuple(cfg.classes))
    if cfg.neck_channels is not None:
        if not isinstance(det.neck, FPNNeckConfig):
            raise RegNetExploreError(f"neck_channels: {det.name} has a {det.neck.label} neck, not an FPN")
        det = dataclasses.replace(det, neck=dataclasses.replace(det.neck, out_channels=cfg.neck_channels))
    if cfg.encoder_channels is not None:
        channels = BackboneInput.of_detector(det).in_channels
        if cfg.encoder_channels[-1] != channels:
            raise RegNetExploreError(f"encoder_channels {list(cfg.encoder_channels)}: the last must be the "
                                     f"backbone's input width {channels}")
        det = dataclasses.replace(det, encoder=dataclasses.replace(det.encoder,
                                                                   feat_channels=tuple(cfg.encoder_channels)))
    if cfg.max_points is not None:
        det = dataclasses.replace(det, voxel=dataclasses.replace(det.voxel, max_points=cfg.max_points))
    return det


def sweep_detector(cfg: SweepConfig, sample: SampledNet) -> DetectorConfig:
    """The detector of one model: :func:`base_detector` with the sampled backbone."""
    base = base_detector(cfg)
    return with_backbone(base, sample.stages, name=f"{base.name}@{sample.space}-{sample.index}")


def training_geometry(cfg: SweepConfig, det: DetectorConfig) -> DetectorConfig:
    """The detector's geometry during training: the crop, if any."""
    return crop_config(det, cfg.crop) if cfg.crop is not None else det


def complexity_probe(cfg: SweepConfig) -> BackboneInput:
    """The backbone's input in this sweep's detector: no stem, the pillar canvas at the training grid."""
    return BackboneInput.of_detector(training_geometry(cfg, get_config(cfg.detector)))


def sample_models(cfg: SweepConfig) -> SampleReport:
    """The sweep's ``cfg.samples`` networks (the first k of a larger sweep are those of a sweep of k)."""
    # AnyNetXA accepts about one draw in 2,000 in the proxy's window: allow for it
    return sample_space(cfg.space, cfg.samples, cfg.seed, flops=cfg.flops, params=cfg.params,
                        num_stages=cfg.num_stages, probe=complexity_probe(cfg), max_draws=100_000 + 5_000 * cfg.samples)


def iteration_plan(budget: int, train_samples: int, batch: int) -> tuple[int, int]:
    """(epochs, iterations per epoch): as few epochs as the split allows, the budget spread evenly over them (the
    product exceeds the budget by less than one iteration per epoch)."""
    epochs = math.ceil(budget / max(1, train_samples // batch))
    return epochs, math.ceil(budget / epochs)


# --- one model ----------------------------------------------------------------------------------------------------


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
    return int(read_checkpoint(path)[1]["iter"]) if path.exists() else 0


def _rank() -> int:
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
        if _rank() != 0:
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
    if _rank() != 0:
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
    batch = cfg.batch_size or det.samples_per_gpu
    tc = TrainConfig(detector=det, data=root, version=cfg.version, work_dir=str(work), batch_size=batch, lr=cfg.lr,
                     warmup_iters=cfg.warmup_iters or max(1, cfg.budget // 10), lr_schedule=cfg.lr_schedule,
                     seed=seed, init_seed=init_seed,
                     crop=cfg.crop, crop_placement=cfg.crop_placement, sweeps=cfg.sweeps, evaluate=False, resume=True,
                     checkpoint_interval=0,
                     progress=False, device=device, pretrained=cfg.pretrained)
    train_split, val_split = default_splits(det, tc, root, cfg.version)
    scoring = val_root(cfg)
    if scoring != root:  # another synthetic set: its own version folder and split names
        _, val_split = default_splits(det, tc, scoring, None)
    n_train = len(open_dataset(det.dataset, root, cfg.version, train_split, sweeps=cfg.sweeps))
    global_batch = batch * int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: a batch per process
    epochs, per_epoch = iteration_plan(cfg.budget, n_train, global_batch)
    tc = dataclasses.replace(tc, epochs=epochs, max_iters_per_epoch=per_epoch)
    first_iter = _checkpoint_iter(work / "latest.pth")
    start = time.perf_counter()
    result = train(tc)
    train_s = time.perf_counter() - start
    if _rank() != 0:
        return None
    iterations = _checkpoint_iter(result.checkpoint)
    # scored as the engine scores: a centred crop on the objects inside it, random windows on the full range
    centred = cfg.crop is not None and cfg.crop_placement == "center"
    model = PointPillars.from_config(training_geometry(cfg, det) if centred else det, result.checkpoint, device)
    val = open_dataset(det.dataset, scoring, cfg.version if scoring == root else None, val_split, sweeps=cfg.sweeps)
    scored = evaluate_model(model, val, work / "eval", class_range=cfg.crop if centred else None)
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


# --- the results table --------------------------------------------------------------------------------------------


def results_path(out: str | Path, shard: tuple[int, int] = (0, 1)) -> Path:
    i, n = shard
    return Path(out) / ("results.jsonl" if n == 1 else f"results.shard-{i}-of-{n}.jsonl")


def read_rows(path: Path) -> list[dict]:
    """The rows of one results file; the text after the last newline (a row torn by a kill) is ignored."""
    lines = path.read_bytes().split(b"\n")[:-1]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise RegNetExploreError(f"{path}:{number}: not a JSON row (the file was edited or corrupted)") from None
    return rows


def finished(row: dict) -> bool:
    """A row of a trained and scored model (rows written before failures were recorded have no status)."""
    return row.get("status", "ok") == "ok"


def load_results(out: str | Path, failed: bool = False) -> pd.DataFrame:
    """The models of a sweep directory (all shards merged), one row each, ordered by index: the finished ones, and
    with ``failed=True`` also those whose row says ``status: failed`` (and why, in ``reason``). A model retried
    after a failure is represented by its finished row."""
    out = Path(out)
    if not out.is_dir():
        raise RegNetExploreError(f"{out}: no such sweep directory")
    rows: dict[tuple[str, int], dict] = {}
    for path in sorted(out.glob("results*.jsonl")):
        for row in read_rows(path):
            key = (row["space"], row["index"])
            if key not in rows or finished(row) or not finished(rows[key]):
                rows[key] = row
    kept = [r for r in rows.values() if failed or finished(r)]
    table = pd.DataFrame(kept)
    return table.sort_values(["space", "index"], ignore_index=True) if len(table) else table


@contextlib.contextmanager
def results_writer(cfg: SweepConfig) -> Iterator[Callable[[dict], None]]:
    """Pin ``cfg``'s settings in its directory (:func:`pin_settings`) and yield ``write(row)``, which appends to this
    shard's results file (:func:`io.jsonl_appender`: locked, a torn last line cut off first)."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    pin_settings(cfg)
    busy = "another sweep is writing it (same --out and --shard); wait for it to finish or stop it"
    with jsonl_appender(results_path(cfg.out, cfg.shard), busy) as write:
        yield write


# --- running ------------------------------------------------------------------------------------------------------

_WORKER: dict = {}  # a pool process's id and device, set by _init_worker


def _init_worker(ids, devices: tuple[str, ...], threads: int) -> None:
    worker = ids.get()
    _WORKER.update(id=worker, device=devices[worker % len(devices)] if devices else None)
    torch.set_num_threads(threads)
    # Linux: die with the sweep, so a killed sweep leaves no orphan training in the work dirs a rerun resumes
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _pool_task(cfg: SweepConfig, sample: SampledNet) -> dict:
    return train_one(cfg, sample, _WORKER["device"], _WORKER["id"])


Job = tuple[SweepConfig, SampledNet]  # one model of one sweep


def _run_serial(jobs: list[Job], devices: tuple[str, ...]) -> Iterator[dict]:
    device = devices[0] if devices else None
    for cfg, sample in jobs:
        yield train_one(cfg, sample, device, 0)


def _run_pool(jobs: list[Job], workers: int, devices: tuple[str, ...]) -> Iterator[dict]:
    """Rows as models finish, ``workers`` at a time; after a failure the running models still finish (and
    their rows are kept), the waiting ones are dropped, then the failure is raised."""
    ctx = multiprocessing.get_context("spawn")
    ids = ctx.Queue()
    for worker in range(workers):
        ids.put(worker)
    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(ids, devices, threads))
    failure = None
    try:
        futures = [pool.submit(_pool_task, cfg, sample) for cfg, sample in jobs]
        for future in as_completed(futures):
            if future.cancelled():
                continue
            try:
                row = future.result()
            except Exception as e:
                failure = failure or e
                for f in futures:
                    f.cancel()
                continue
            yield row
    finally:  # also on an interrupt: drop the waiting models rather than train them all
        pool.shutdown(cancel_futures=True)
    if failure is not None:
        raise failure


def _run_jobs(cfg: SweepConfig, jobs: list[Job]) -> Iterator[dict]:
    """Rows of ``jobs`` as they finish, on ``cfg``'s backend, workers and devices."""
    if cfg.backend == "ray":
        from regnet_explore.analysis.ray_backend import run_ray

        return run_ray(jobs)
    return _run_serial(jobs, cfg.devices) if cfg.workers == 1 else _run_pool(jobs, cfg.workers, cfg.devices)


def pending(cfg: SweepConfig, report: SampleReport | None = None) -> list[SampledNet]:
    """This shard's samples (of ``report``, default :func:`sample_models`) without a row in the table yet (or with
    a failed row, when ``cfg.retry_failed``)."""
    report = report or sample_models(cfg)
    table = load_results(cfg.out, failed=not cfg.retry_failed) if Path(cfg.out).is_dir() else pd.DataFrame()
    done = set(zip(table["space"], table["index"])) if len(table) else set()
    i, n = cfg.shard
    return [s for s in report.samples if s.index % n == i and (s.space, s.index) not in done]


def interleave(streams: list[list]) -> list:
    """Round robin over lists: the first item of each, then the second of each, and so on."""
    return [item for group in itertools.zip_longest(*streams, fillvalue=_NONE) for item in group
            if item is not _NONE]


_NONE = object()


class MixedCPUWarning(UserWarning):
    """A sweep adds rows computed on another kind of device than the rows already in its table."""


def warn_mixed_devices(cfg: SweepConfig) -> None:
    """Warn when ``cfg.out``'s table holds rows of another device kind than the one this sweep trains on: a CPU
    kind's math libraries shift the errors of a short run (docs/sweeps.md), so the spaces compared should be
    trained on the same kinds in equal numbers (:func:`run_sweeps` interleaves them)."""
    table = load_results(cfg.out) if Path(cfg.out).is_dir() else pd.DataFrame()
    if "device_name" not in table:
        return
    here = device_name(cfg.devices[0] if cfg.devices else ("cuda" if torch.cuda.is_available() else "cpu"))
    kinds = sorted(set(table["device_name"].dropna()))
    if kinds and here not in kinds:
        warnings.warn(f"{cfg.out}: its rows were computed on {'; '.join(kinds)}, this machine adds rows of {here}: "
                      "train the spaces you compare on the same kinds in equal numbers", MixedCPUWarning,
                      stacklevel=3)


# settings of the running, not of the results: sweeps trained as one stream must share them
RUNNER_FIELDS = ("workers", "devices", "shard", "backend", "address", "cpus_per_model", "gpus_per_model",
                 "max_retries")


def run_sweeps(cfgs: list[SweepConfig], on_row: Callable[[dict], None] | None = None) -> list[pd.DataFrame]:
    """Sample, train and evaluate the models of several sweeps (of different spaces, each in its own directory) not
    yet in their tables, as one stream that alternates between them (:func:`interleave`): whatever machine trains a
    stretch of it trains every space in equal numbers, so a machine's kind does not favour a space. Returns each
    sweep's whole table (all shards). ``attrs``: the sampler's ``drawn`` and ``rejected`` counts, ``sampling_s`` and
    the number of models ``trained`` now, and how many models of the directory have ``failed`` (their rows are not
    in the returned table; ``load_results(out, failed=True)`` has them). ``on_row`` sees each new row as it is
    written."""
    cfgs = [normalize(cfg) for cfg in cfgs]
    spaces = [cfg.space for cfg in cfgs]
    if len(set(spaces)) < len(spaces):
        raise RegNetExploreError(f"sweeps trained together must sample different spaces, got {', '.join(spaces)}")
    differ = [k for k in RUNNER_FIELDS if len({json.dumps(getattr(c, k)) for c in cfgs}) > 1]
    if differ:
        raise RegNetExploreError(f"sweeps trained together must share {', '.join(differ)}")
    reports, sampling_s = [], []
    for cfg in cfgs:  # before anything is written: an empty flops window fails here
        start = time.perf_counter()
        reports.append(sample_models(cfg))
        sampling_s.append(time.perf_counter() - start)
    if _rank() != 0:  # a torchrun job: the other ranks train beside rank 0, which evaluates and writes the rows
        for cfg, sample in interleave([[(c, s) for s in pending(c, r)] for c, r in zip(cfgs, reports)]):
            train_one(cfg, sample)
        return [pd.DataFrame() for _ in cfgs]
    with contextlib.ExitStack() as stack:
        writers = {cfg.space: stack.enter_context(results_writer(cfg)) for cfg in cfgs}
        for cfg in cfgs:
            data_root(cfg), val_root(cfg)  # generate the synthetic sets once, before any worker wants them
            warn_mixed_devices(cfg)
        todos = [[(cfg, s) for s in pending(cfg, report)] for cfg, report in zip(cfgs, reports)]
        for row in _run_jobs(cfgs[0], interleave(todos)):
            writers[row["space"]](row)
            if on_row is not None:
                on_row(row)
    tables = []
    for cfg, report, seconds, todo in zip(cfgs, reports, sampling_s, todos):
        table = load_results(cfg.out)
        table.attrs.update(drawn=report.drawn, rejected=report.rejected, sampling_s=seconds, trained=len(todo),
                           failed=len(load_results(cfg.out, failed=True)) - len(table))
        tables.append(table)
    return tables


def run_sweep(cfg: SweepConfig, on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """One sweep: :func:`run_sweeps` of ``[cfg]``."""
    return run_sweeps([cfg], on_row)[0]


__all__ = ["BACKENDS", "RESULT_FIELDS", "RUNNER_FIELDS", "MixedCPUWarning", "SweepConfig", "base_detector",
           "complexity_probe", "finished", "interleave", "iteration_plan", "load_results", "model_dir", "normalize",
           "pending", "results_writer", "run_sweep", "run_sweeps", "sweep_detector", "train_one",
           "warn_mixed_devices"]
