"""Training-step benchmark: per-stage time of one step, samples/s and peak memory, full range vs a window.

Real batches of the synthetic nuScenes mini_train (10 sweeps, the reference augmentation) go through the stages of
the engine's step: data (load + augment), forward (voxelize, pillar encoder, backbone, neck, head), targets, loss,
backward, optimizer step. The baseline is the full-range configuration measured in the same run; the window is
the ``--crop-placement random`` training geometry (a 50 m x 50 m window, same network). Peak memory is the
process's resident high-water mark after each configuration (the window runs first, so its figure is its own).

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
from regnet_explore.detection.window import random_window
from regnet_explore.runtime import tune_allocator
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.train.augment import AugmentConfig
from regnet_explore.train.engine import TrainConfig, TrainingSet, default_splits
from regnet_explore.train.losses import LossConfig, detection_loss
from regnet_explore.train.schedule import ScheduleConfig, make_optimizer
from regnet_explore.train.targets import AssignerConfig, build_targets

STAGES = ("data", "forward", "targets", "loss", "backward", "step")


def time_steps(name: str, crop: float | None, batch: int, steps: int) -> dict[str, float]:
    """Median seconds per stage over ``steps`` steps (after one warm-up step)."""
    full = get_config(name)
    root = ensure_default_dataset(full.dataset)
    split = default_splits(full, TrainConfig(detector=name), str(root), None)[0]
    data = TrainingSet(open_dataset(full.dataset, root, None, split, sweeps=10), full, 0, AugmentConfig())
    torch.manual_seed(0)
    model = PointPillars(full).train()
    model.set_precision("fp32")
    optimizer = make_optimizer(model, ScheduleConfig(), 1e-3)
    head, loss_cfg = model.pts_bbox_head, LossConfig(code_weights=LossConfig().code_weights[: full.code_size])
    rows = []
    for i in range(steps + 1):
        t = {}
        t0 = time.perf_counter()
        items = [data[(i * batch + j) % len(data)] for j in range(batch)]
        if crop is not None:
            model.set_geometry(random_window(full, crop, np.random.default_rng([0, i])))
        t["data"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cls, reg, dirs = model([x[0] for x in items])
        t["forward"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        anchors = torch.cat(head.anchors([c.shape[-2:] for c in cls], torch.device("cpu")), dim=0)
        targets = build_targets(anchors, [x[1] for x in items], [x[2] for x in items], full.num_classes,
                                AssignerConfig(), head.dir_offset, head.dir_limit_offset)
        t["targets"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        loss = sum(detection_loss(cls, reg, dirs, targets, full.num_classes, loss_cfg).values())
        t["loss"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t["backward"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
        optimizer.step()
        t["step"] = time.perf_counter() - t0
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
    print(f"{'':24s}" + "".join(f"{s:>10s}" for s in STAGES) + f"{'total':>10s}{'samples/s':>11s}{'peak GB':>9s}"
          f"{'speed-up':>10s}")
    for label, r in results.items():
        total = sum(r[s] for s in STAGES)
        print(f"{label:24s}" + "".join(f"{r[s]:10.3f}" for s in STAGES) + f"{total:10.2f}{args.batch / total:11.2f}"
              f"{r['peak_gb']:9.1f}{sum(base[s] for s in STAGES) / total:9.2f}x")


if __name__ == "__main__":
    main()
