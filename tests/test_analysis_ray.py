"""The Ray backend of sweeps against a local Ray instance (2 CPUs): the rows of the local backend, and a worker
killed in mid-model retried by Ray, resuming from the model's latest.pth."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from regnet_explore.analysis.sweep import SweepConfig, iteration_plan, load_results, run_sweep
from regnet_explore.data.dataset import open_dataset
from regnet_explore.train.curves import read_log

from .helpers import TINY_SWEEP, cli_error, tiny_sweep_args

ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install 'regnet_explore[cluster]'")

COMPARED = ("flops", "params_count", "mAP", "NDS", "AP_car", "error", "loss", "iterations")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # this machine only
    yield
    ray.shutdown()


def _same_rows(a, b) -> None:
    """Ray's tasks train on one thread (1 CPU each), as the local reference does (``tiny_sweep``, the
    ``one_torch_thread`` fixture)."""
    assert list(a["index"]) == list(b["index"])
    for col in COMPARED:
        assert a[col].tolist() == pytest.approx(b[col].tolist(), rel=1e-5, abs=1e-6), col


def _task_pids() -> list[int]:
    """Ray workers running a model task (Ray titles them ray::<function>)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::_model_task"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_ray_backend_gives_the_rows_of_the_local_backend(local_ray, tiny_sweep, nus_root, tmp_path):
    remote = run_sweep(SweepConfig(**TINY_SWEEP, samples=2, data=str(nus_root), out=str(tmp_path / "ray"),
                                   backend="ray"))
    _same_rows(remote, load_results(tiny_sweep).iloc[:2])
    assert remote.attrs["trained"] == 2 and set(remote["status"]) == {"ok"}
    assert (remote["worker"] != os.getpid()).all()  # trained in Ray's worker processes


def test_killed_ray_worker_is_retried_and_resumes_its_model(local_ray, one_torch_thread, nus_root, tmp_path):
    # 3 epochs of 3 iterations: the worker is killed once latest.pth holds an epoch, before the model finishes
    settings = dict(TINY_SWEEP, samples=1, budget=8, data=str(nus_root))
    epochs = iteration_plan(8, len(open_dataset("nuscenes", nus_root, None, "mini_train", sweeps=1)), 2)[0]
    out = tmp_path / "killed"
    checkpoint = out / "models" / "regnetx-0" / "latest.pth"
    killed: list[int] = []

    def kill_once_checkpointed():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            pids = _task_pids()
            if checkpoint.exists() and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_once_checkpointed, daemon=True)
    killer.start()
    table = run_sweep(SweepConfig(**settings, out=str(out), backend="ray", max_retries=2))
    killer.join()
    assert killed, "no model task was found to kill"
    row = table.iloc[0]
    assert row["status"] == "ok", row.get("reason")
    assert row["worker"] != killed[0]  # finished by another worker process
    log = [r for r in read_log(checkpoint.parent / "train.log.json") if r.get("mode") == "train"]
    logged = [r["epoch"] for r in log]
    assert logged == list(range(1, epochs + 1))  # each epoch once: the retry resumed from latest.pth
    reference = run_sweep(SweepConfig(**settings, out=str(tmp_path / "reference")))
    _same_rows(table, reference)


def test_ray_missing_is_one_clear_line(monkeypatch, nus_root, tmp_path, capsys):
    import builtins


    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    err = cli_error(capsys, [*tiny_sweep_args(nus_root, tmp_path / "x", 1), "--backend", "ray"])
    assert "pip install 'regnet_explore[cluster]'" in err
    assert load_results(tmp_path / "x").empty
