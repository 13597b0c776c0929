"""Running sweeps: the pending models of one or several sweeps as one interleaved stream, on a local process pool,
serially, or as Ray tasks (:mod:`.ray_backend`); each row written to its sweep's table as its model finishes."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
import torch

from regnet_explore.analysis.sampling import SampledNet, SampleReport
from regnet_explore.analysis.sweep.model import rank, train_one
from regnet_explore.analysis.sweep.settings import SweepConfig, data_root, normalize, sample_models, val_root
from regnet_explore.analysis.sweep.table import load_results, results_writer, warn_mixed_devices
from regnet_explore.errors import RegNetExploreError

PR_SET_PDEATHSIG = 1  # linux/prctl.h
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
        from regnet_explore.analysis.sweep.ray_backend import run_ray

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
    if cfgs[0].backend == "ray":  # before anything is written: an unreachable cluster is one line
        from regnet_explore.analysis.sweep.ray_backend import probe_cluster

        probe_cluster(cfgs[0].address)
    reports, sampling_s = [], []
    for cfg in cfgs:  # before anything is written: an empty flops window fails here
        start = time.perf_counter()
        reports.append(sample_models(cfg))
        sampling_s.append(time.perf_counter() - start)
    if rank() != 0:  # a torchrun job: the other ranks train beside rank 0, which evaluates and writes the rows
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
