"""Sweeps on a Ray cluster: one Ray task per model, Ray's retries for workers that die.

Each model is :func:`.model.train_one` in a task that reserves ``cfg.cpus_per_model`` CPUs (its torch threads) and
``cfg.gpus_per_model`` GPUs. A task whose worker process dies (a preempted node, the OOM killer, a kill) is rerun
by Ray up to ``cfg.max_retries`` times, and ``train_one`` resumes the model from its ``latest.pth``, so a retry
loses at most the epoch it was in. Failures inside the model (it cannot be built, its loss diverges) are not
retried: ``train_one`` returns them as ``status: failed`` rows. The driver (the sweep process) writes every row;
the sweep directory must be on a filesystem that every Ray node sees.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Iterator

from regnet_explore.analysis.sampling import SampledNet
from regnet_explore.analysis.sweep.model import train_one
from regnet_explore.analysis.sweep.settings import SweepConfig
from regnet_explore.errors import RegNetExploreError

INSTALL_HINT = "pip install 'regnet_explore[cluster]' (or pip install 'ray[default]')"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RegNetExploreError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def probe_cluster(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when nothing listens at a ``HOST:PORT`` (or ``ray://HOST:PORT``) cluster address:
    Ray itself retries for minutes before it gives up."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RegNetExploreError(f"--address {address}: give the cluster as HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise RegNetExploreError(f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start it "
                                 "(`ray start --head` on its head node) or leave --address out for a local "
                                 "instance") from None


def _model_task(cfg: SweepConfig, sample: SampledNet) -> dict:
    """One model inside a Ray worker: torch threads = reserved CPUs, 'cuda' when a GPU is reserved."""
    import ray
    import torch

    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    device = "cuda" if resources.get("GPU", 0) > 0 else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to its GPUs
    return train_one(cfg, sample, device, worker=os.getpid())


def run_ray(jobs: list[tuple[SweepConfig, SampledNet]]) -> Iterator[dict]:
    """Rows of ``jobs`` (a sweep's settings and one of its models each) as their tasks finish, on the cluster and
    with the resources the first job's settings name. Joins ``cfg.address`` (None: starts a local Ray instance with this
    machine's CPUs, or reuses one this process already started). A model whose worker died more often than its
    retries allow gets a failed row."""
    if not jobs:
        return
    cfg = jobs[0][0]
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        # without an address: a Ray instance of this machine alone, reached on the loopback interface
        local = {} if cfg.address else {"_node_ip_address": "127.0.0.1"}
        try:
            ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False, **local)
        except (ConnectionError, TimeoutError, RuntimeError) as e:
            where = f"--address {cfg.address}: no Ray cluster answers there" if cfg.address else "a local Ray instance"
            raise RegNetExploreError(f"{where} ({str(e).splitlines()[0][:200]}); start the cluster (`ray start "
                                     "--head` on its head node) or leave --address out for a local instance") from None
    task = ray.remote(_model_task).options(num_cpus=cfg.cpus_per_model, num_gpus=cfg.gpus_per_model,
                                           max_retries=cfg.max_retries, retry_exceptions=False)
    try:  # a task is one model: no pool inside it
        running = {task.remote(dataclasses.replace(c, workers=1), sample): (sample, time.perf_counter())
                   for c, sample in jobs}
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            sample, start = running.pop(done[0])
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayError as e:  # the worker died more than max_retries + 1 times
                reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
                yield {**sample.to_dict(), "status": "failed", "reason": reason,
                       "wall_s": time.perf_counter() - start, "worker": -1, "device": "ray"}
    finally:
        for ref in running if "running" in locals() else ():
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


__all__ = ["INSTALL_HINT", "probe_cluster", "run_ray"]
