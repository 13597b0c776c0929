"""Training-step benchmark: per-stage time of one step, samples/s and peak memory, full range vs a window.

Real batches of the synthetic nuScenes mini_train (10 sweeps, the reference augmentation) go through the engine's
own step (``train.engine.step_losses`` then ``step_update``), timed by stage: data (load + augment), forward
(voxelize, pillar encoder, backbone, neck, head: ``stage_timer``), targets + loss (the rest of ``step_losses``),
update (backward, gradient clip, optimizer step: ``step_update``). The baseline is the full-range configuration
measured in the same run; the window is the ``--crop-placement random`` training geometry (a 50 m x 50 m window,
same network). Peak memory is the process's resident high-water mark after each configuration (the window runs
first, so its figure is its own).

    python benchmarks/train.py [--config regnet-400mf-fpn-nus] [--batch 4] [--steps 4] [--crop 25] [--threads N]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.timing import stage_timer
from regnet_explore.detection.window import random_window
from regnet_explore.runtime import tune_allocator
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.train.augment import AugmentConfig
from regnet_explore.train.engine import Step, TrainConfig, TrainingSet, default_splits, step_losses, step_update
from regnet_explore.train.schedule import ScheduleConfig, make_optimizer

STAGES = ("data", "forward", "targets+loss", "update")


def time_steps(name: str, crop: float | None, batch: int, steps: int) -> dict[str, float]:
    """Median seconds per stage over ``steps`` steps (after one warm-up step)."""
    full = get_config(name)
    root = ensure_default_dataset(full.dataset)
    split = default_splits(full, TrainConfig(detector=name), str(root), None)[0]
    data = TrainingSet(open_dataset(full.dataset, root, None, split, sweeps=10), full, 0, AugmentConfig())
    torch.manual_seed(0)
    model = PointPillars(full).train()
    model.set_precision("fp32")
    step = Step(model, make_optimizer(model, ScheduleConfig(), 1e-3), full, torch.device("cpu"))
    rows = []
    for i in range(steps + 1):
        t = {}
        t0 = time.perf_counter()
        items = [data[(i * batch + j) % len(data)] for j in range(batch)]
        if crop is not None:
            model.set_geometry(random_window(full, crop, np.random.default_rng([0, i])))
        t["data"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with stage_timer(model) as forward:
            losses = step_losses(step, [x[0] for x in items], [x[1] for x in items], [x[2] for x in items])
        t["forward"] = sum(forward.values())
        t["targets+loss"] = time.perf_counter() - t0 - t["forward"]
        t0 = time.perf_counter()
        step_update(step, sum(losses.values()))
        t["update"] = time.perf_counter() - t0
        if i:  # the first step pays for allocations and caches
            rows.append(t)
    return {k: float(np.median([r[k] for r in rows])) for k in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="regnet-400mf-fpn-nus")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--crop", type=float, default=25.0)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.config}, batch {args.batch}, {torch.get_num_threads()} threads, median of {args.steps} steps")
    results = {}
    for label, crop in ((f"window ±{args.crop:g} m", args.crop), ("full range (baseline)", None)):
        results[label] = time_steps(args.config, crop, args.batch, args.steps)
        results[label]["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    base = results["full range (baseline)"]
    print(f"{'':24s}" + "".join(f"{s:>13s}" for s in STAGES) + f"{'total':>10s}{'samples/s':>11s}{'peak GB':>9s}"
          f"{'speed-up':>10s}")
    for label, r in results.items():
        total = sum(r[s] for s in STAGES)
        print(f"{label:24s}" + "".join(f"{r[s]:13.3f}" for s in STAGES) + f"{total:10.2f}{args.batch / total:11.2f}"
              f"{r['peak_gb']:9.1f}{sum(base[s] for s in STAGES) / total:9.2f}x")


if __name__ == "__main__":
    main()
