"""Shared test fixtures (the real nuScenes frame, the small synthetic sets, a tiny sweep), the suite's skip policy,
and how its modules share the machine's cores between pytest-xdist workers."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from regnet_explore.data.dataset import LyftData, NuScenesData
from regnet_explore.data.points import load_points_bin
from regnet_explore.synthetic import synthesize

from .helpers import REAL_NUS_FRAME, REAL_NUS_POINTS, TINY_SWEEP

# --- two workers (pytest-xdist, ``-n 2`` in pyproject.toml) --------------------------------------------------------

SAME_WORKER = {"test_analysis_ray": "test_analysis_sweep"}  # modules that share a session fixture (tiny_sweep)


def pytest_configure(config):
    """In a worker: torch, and every process the tests start (kernels, training runs), gets its share of the cores,
    so the workers do not oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(items):
    """A module's tests run in one worker (``--dist loadgroup``): module fixtures (a shipped model, an ONNX export,
    a notebook server) are made once. Modules with a test marked ``slow`` or ``notebook`` are handed out first, so
    that the workers finish together rather than one running a long module alone at the end."""
    group = {item: SAME_WORKER.get(name, name) for item in items
             for name in [item.module.__name__.rpartition(".")[2]]}
    long = {group[item] for item in items if item.get_closest_marker("slow") or item.get_closest_marker("notebook")}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group[item]))
    items.sort(key=lambda item: group[item] not in long)  # stable: the order within stays


# --- skips: only a missing CUDA device justifies one ------------------------------------------------------------

UNJUSTIFIED_SKIPS: list[str] = []


def _record_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and "cuda" not in getattr(report, "keywords", {}):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        UNJUSTIFIED_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report):
    _record_skip(report)


def pytest_collectreport(report):  # a module skipped as a whole (importorskip at import time)
    _record_skip(report)


def pytest_terminal_summary(terminalreporter):
    if UNJUSTIFIED_SKIPS:
        terminalreporter.section("skips that fail the run (only tests marked cuda may skip)", red=True)
        for line in UNJUSTIFIED_SKIPS:
            terminalreporter.line(line)


def pytest_sessionfinish(session, exitstatus):
    """A missing OS package, a module that failed to import or a missing file is a failure, not a quiet skip."""
    if UNJUSTIFIED_SKIPS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- the real nuScenes frame -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealFrame:
    """One real nuScenes LIDAR_TOP key frame (tests/data/nuscenes-demo-frame): its file, points (N, 5) as stored,
    the annotation file's content, and its ground truth without the ``ignored`` boxes."""

    path: Path
    points: np.ndarray
    annotations: dict

    @property
    def instances(self) -> list[dict]:
        return [i for i in self.annotations["instances"] if i["category"] != "ignored"]

    @property
    def gt(self) -> dict:
        """``gt_boxes`` (K, 7) and ``gt_names`` of the detection classes, as the views take them."""
        return {"gt_boxes": np.array([i["box_lidar"] for i in self.instances]),
                "gt_names": [i["category"] for i in self.instances]}


@pytest.fixture(scope="session")
def real_frame() -> RealFrame:
    annotations = json.loads((REAL_NUS_FRAME / "annotations.json").read_text())
    assert annotations["lidar_file"] == REAL_NUS_POINTS.name
    return RealFrame(REAL_NUS_POINTS, load_points_bin(REAL_NUS_POINTS, 5), annotations)


# --- small synthetic sets ----------------------------------------------------------------------------------------

# Shared by the data, training and notebook tests: 4 scenes x 3 key frames each; the nuScenes set holds both
# mini_val scenes, the Lyft set one val scene. Made once per test session.
SMALL_SETS = {"nuscenes": (4, 3), "lyft": (4, 3)}


@pytest.fixture(scope="session")
def nus_root(tmp_path_factory) -> Path:
    return synthesize("nuscenes", tmp_path_factory.mktemp("data") / "nuscenes-small", *SMALL_SETS["nuscenes"], seed=0)


@pytest.fixture(scope="session")
def lyft_root(tmp_path_factory) -> Path:
    return synthesize("lyft", tmp_path_factory.mktemp("data") / "lyft-small", *SMALL_SETS["lyft"], seed=0)


@pytest.fixture(scope="session")
def nusc(nus_root):
    from nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(nus_root), verbose=False)


@pytest.fixture(scope="module")
def nus_val(nus_root) -> NuScenesData:
    """The small nuScenes set's mini_val split."""
    return NuScenesData(nus_root, "v1.0-mini", "mini_val")


@pytest.fixture(scope="module")
def lyft_val(lyft_root) -> LyftData:
    """The small Lyft set's val split."""
    return LyftData(lyft_root, "v1.01-train", "val")


# --- training compared across processes --------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """Train in this process on one thread, as sweep workers (2 on 2 cores), Ray tasks (1 CPU) and the subprocesses
    the tests start (OMP_NUM_THREADS=1) do: the same float path, so their rows agree on every CPU kind."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_sweep(nus_root, tmp_path_factory) -> Path:
    """A finished sweep of 3 tiny models (``TINY_SWEEP``) on the small nuScenes set, trained on one thread."""
    from regnet_explore.analysis.sweep import SweepConfig, run_sweep

    out = tmp_path_factory.mktemp("sweep") / "serial"
    with torch_threads(1):
        run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(out)))
    return out
