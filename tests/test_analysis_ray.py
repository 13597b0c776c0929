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
from regnet_explore.cli import main
from regnet_explore.data.dataset import open_dataset
from regnet_explore.train.curves import read_log

ray = pytest.importorskip("ray", reason="the Ray backend is optional: pip install 'regnet_explore[cluster]'")

TINY = dict(space="regnetx", crop=8.0, sweeps=1, batch_size=2, flops=(0.0, 0.15e9))
COMPARED = ("flops", "params_count", "mAP", "NDS", "AP_car", "error", "loss", "iterations")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # this machine only
    yield
    ray.shutdown()


def _same_rows(a, b) -> None:
    """Ray's tasks train with one thread, the local reference with the test process's: float sums differ in their
    last digits (a resumed model's final loss by up to 3e-5 relative, measured)."""
    assert list(a["index"]) == list(b["index"])
    for col in COMPARED:
        assert a[col].tolist() == pytest.approx(b[col].tolist(), rel=1e-4, abs=1e-6), col


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


def test_ray_backend_gives_the_rows_of_the_local_backend(local_ray, nus_root, tmp_path):
    settings = dict(TINY, samples=2, budget=4, data=str(nus_root))
    local = run_sweep(SweepConfig(**settings, out=str(tmp_path / "local")))
    remote = run_sweep(SweepConfig(**settings, out=str(tmp_path / "ray"), backend="ray"))
    _same_rows(remote, local)
    assert remote.attrs["trained"] == 2 and set(remote["status"]) == {"ok"}
    assert (remote["worker"] != os.getpid()).all()  # trained in Ray's worker processes


def test_killed_ray_worker_is_retried_and_resumes_its_model(local_ray, nus_root, tmp_path):
    # 3 epochs of 3 iterations: the worker is killed once latest.pth holds an epoch, before the model finishes
    settings = dict(TINY, samples=1, budget=8, data=str(nus_root))
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
    code = main(["sweep", "regnetx", "--samples", "1", "--budget", "2", "--crop", "8", "--sweeps", "1",
                 "--flops-max", "0.15", "--data", str(nus_root), "--out", str(tmp_path / "x"), "--backend", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'regnet_explore[cluster]'" in err[0]
    assert load_results(tmp_path / "x").empty
