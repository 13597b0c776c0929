"""Rank fidelity of the sweep's proxy against a reference that does not saturate (docs/sweeps.md, the extension's
plan): the first ``--models`` RegNetX networks trained with ``--factor`` times the proxy's budget, each scored by
1 - car AP at the strictest centre-distance threshold (0.5 m), where the four-threshold AP of the long runs
saturates (0.88-0.95); Spearman's rho between the proxy's errors (the study's own rows) and that reference, with a
BCa bootstrap interval. The reference's own noise: ``--noise-models`` of the networks trained again at the long
budget with training seed 1; the figure counts as informative when the reference's spread across networks (its
standard deviation) is at least twice that noise.

Resumable (the sweeps skip what their tables hold); writes ``<out>/fidelity-strict.json``.

    python benchmarks/rank_fidelity.py --out sweeps/proxy [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regnet_explore.analysis.fidelity import fidelity_report, rank_fidelity
from regnet_explore.analysis.sweep import PROXY, SweepConfig, load_results, run_sweep
from regnet_explore.io import write_json_atomic


def sweeps(args: argparse.Namespace) -> list[SweepConfig]:
    long = {**PROXY, "budget": PROXY["budget"] * args.factor}
    name = f"fidelity-{args.factor}x-strict"
    return [SweepConfig(**long, space="regnetx", samples=args.models, out=str(args.out / name), workers=args.workers),
            SweepConfig(**long, space="regnetx", samples=args.noise_models, train_seed=1,
                        out=str(args.out / f"{name}-seed-1"), workers=args.workers)]


def figures(args: argparse.Namespace) -> dict:
    long, again = (load_results(cfg.out) for cfg in sweeps(args))
    return rank_fidelity(load_results(args.out / "regnetx"), long, again, args.factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sweeps/proxy"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--noise-models", type=int, default=4)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not (args.out / "regnetx").is_dir():
        parser.error(f"{args.out / 'regnetx'}: the study's RegNetX sweep (the proxy's errors) is not there")
    if not args.report_only:
        for cfg in sweeps(args):
            print(f"== {Path(cfg.out).name}: {cfg.samples} models, budget {cfg.budget}", flush=True)
            run_sweep(cfg)
    result = figures(args)
    print(fidelity_report(result))
    write_json_atomic(result, args.out / "fidelity-strict.json")
    print(json.dumps(result["spearman"]))


if __name__ == "__main__":
    main()
