"""Rank fidelity of the sweep's proxy against a reference that does not saturate (docs/sweeps.md, the extension's
plan and its amendment): the first ``--models`` RegNetX networks trained with ``--factor`` times the proxy's budget,
each scored by 1 - car AP at the strictest centre-distance threshold (0.5 m), where the four-threshold AP of the long
runs saturates (0.88-0.95); Spearman's rho between the proxy's errors (the study's own rows) and that reference, with
a BCa bootstrap interval.

Two figures. The plan's: the reference is one long run a network (training seed 0), its noise from the first
``--noise-models`` networks trained again with training seed 1. The amendment's: the reference is each network's
mean over training seeds 0 to ``--seeds`` - 1 (every network trained with each), its noise that of such a mean (one
run's seed std pooled over all the networks, over sqrt(seeds)). Each counts as informative when the reference's
spread across networks (its standard deviation) is at least twice its noise.

Resumable (the sweeps skip what their tables hold); writes ``<out>/fidelity-strict.json``.

    python benchmarks/rank_fidelity.py --out sweeps/proxy [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regnet_explore.analysis.fidelity import (
    PLANNED_NOISE_MODELS,
    fidelity_report,
    rank_fidelity,
    seed_mean_fidelity,
)
from regnet_explore.analysis.sweep import PROXY, SweepConfig, load_results, run_sweep
from regnet_explore.io import write_json_atomic


def sweeps(args: argparse.Namespace) -> list[SweepConfig]:
    """The long runs, one sweep a training seed: seed 0 in ``fidelity-<factor>x-strict``, seed s in ``...-seed-<s>``."""
    long = {**PROXY, "budget": PROXY["budget"] * args.factor, "space": "regnetx", "samples": args.models,
            "workers": args.workers}
    name = f"fidelity-{args.factor}x-strict"
    # seed 0 is the sampling seed's default (train_seed unset), as the planned runs were pinned
    return [SweepConfig(**long, train_seed=seed or None, out=str(args.out / (f"{name}-seed-{seed}" if seed else name)))
            for seed in range(args.seeds)]


def figures(args: argparse.Namespace) -> dict:
    proxy = load_results(args.out / "regnetx")
    seeds = [load_results(cfg.out) for cfg in sweeps(args)]
    planned_noise = seeds[1][seeds[1]["index"] < args.noise_models]
    return dict(planned=rank_fidelity(proxy, seeds[0], planned_noise, args.factor),
                seed_mean=seed_mean_fidelity(proxy, seeds, args.factor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sweeps/proxy"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--noise-models", type=int, default=PLANNED_NOISE_MODELS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not (args.out / "regnetx").is_dir():
        parser.error(f"{args.out / 'regnetx'}: the study's RegNetX sweep (the proxy's errors) is not there")
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: the reference's noise needs at least 2 training seeds")
    if not args.report_only:
        for cfg in sweeps(args):
            print(f"== {Path(cfg.out).name}: {cfg.samples} models, budget {cfg.budget}, training seed "
                  f"{cfg.train_seed}", flush=True)
            run_sweep(cfg)
    result = figures(args)
    print(fidelity_report(result["planned"]), fidelity_report(result["seed_mean"]), sep="\n\n")
    write_json_atomic(result, args.out / "fidelity-strict.json")
    print(json.dumps({name: r["spearman"] for name, r in result.items()}))


if __name__ == "__main__":
    main()
