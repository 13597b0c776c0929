"""Sweep throughput: the same small sweep with 1 worker and with K, in models/hour, and the speed-up.

Each run trains the same sampled models into a fresh directory (synthetic nuScenes set unless ``--data``), so the
two tables hold the same rows; the figures are the whole run's wall time (pool start-up included) and, per model,
the table's training and evaluation times. Sampling runs once per sweep in the parent. K workers split the torch
threads (``torch.get_num_threads() // K`` each), so on a CPU the speed-up measures how much better K small models
use the cores than one model with all of them.

    python benchmarks/sweep.py [--workers 2] [--samples 4] [--budget 8] [--crop 8] [--flops-max 0.15] [--quick]
    python benchmarks/sweep.py --proxy --samples 4     # the study's proxy task (docs/sweeps.md): its cost per model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from regnet_explore.analysis.sweep import PROXY, SweepConfig, recipe, run_sweep
from regnet_explore.runtime import tune_allocator


def timed_sweep(cfg: SweepConfig) -> dict:
    start = time.perf_counter()
    table = run_sweep(cfg)
    wall = time.perf_counter() - start
    return {"workers": cfg.workers, "models": len(table), "wall": wall, "per_hour": 3600 * len(table) / wall,
            "sampling": table.attrs["sampling_s"], "train": table["train_s"].median(),
            "eval": table["eval_s"].median(), "samples_per_s": table["samples_per_s"].median(),
            "losses": table["loss"].tolist()}


def report(r: dict) -> None:
    print(f"\n== {r['workers']} worker(s): {r['models']} models in {r['wall']:.1f} s = {r['per_hour']:.0f} models/hour")
    print(f"  sampling {1000 * r['sampling']:.0f} ms per sweep; per model (median): training {r['train']:.1f} s "
          f"({r['samples_per_s']:.2f} samples/s), evaluation {r['eval']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="K, compared with 1 worker")
    parser.add_argument("--space", default="regnetx")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--budget", type=int, default=8, help="training iterations per model")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop", type=float, default=8.0, help="half-extent (m) of the training crop")
    parser.add_argument("--sweeps", type=int, default=1)
    parser.add_argument("--flops-max", type=float, default=0.15, help="GFLOPs of the backbone on the crop")
    parser.add_argument("--data", help="dataroot (default: the synthetic nuScenes mini set)")
    parser.add_argument("--device", nargs="+", help="devices for the workers (default: cuda if present, else cpu)")
    parser.add_argument("--out", help="keep the sweep directories here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="2 models of 2 iterations")
    parser.add_argument("--proxy", action="store_true", help="the --proxy preset (its budget, window, data, ...)")
    args = parser.parse_args(argv)
    tune_allocator()
    if args.quick:
        args.samples, args.budget = 2, 2
    if args.proxy:
        settings = {**PROXY, "data": args.data, "synthetic": None if args.data else PROXY["synthetic"]}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.samples} {args.space} models "
              f"of the --proxy task ({PROXY['budget']} iterations of batch {PROXY['train'].batch_size})")
    else:
        settings = dict(budget=args.budget, flops=(0.0, args.flops_max * 1e9), data=args.data,
                        train=recipe(args.budget, batch_size=args.batch_size, crop=args.crop, sweeps=args.sweeps))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}; "
              f"{args.samples} {args.space} models x {args.budget} iterations of batch {args.batch_size}, "
              f"crop {args.crop:g} m, backbone <= {args.flops_max:g} GFLOPs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        results = []
        for workers in (1, args.workers):
            cfg = SweepConfig(space=args.space, samples=args.samples, **settings, out=str(root / f"workers-{workers}"),
                              workers=workers, devices=tuple(args.device or ()))
            results.append(timed_sweep(cfg))
            report(results[-1])
    one, many = results
    same = torch.allclose(torch.tensor(one["losses"]), torch.tensor(many["losses"]), rtol=1e-5)
    print(f"\n{args.workers} workers / 1 worker: {many['per_hour'] / one['per_hour']:.2f}x models/hour; "
          f"same final losses: {'yes' if same else 'NO'}; {args.workers} workers: {3600 / many['per_hour']:.1f} s "
          "a model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
