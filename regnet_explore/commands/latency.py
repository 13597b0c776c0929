"""``regnet-explore latency`` (time every model of a sweep as a deployable detector) and ``latency-report``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from regnet_explore.analysis.comparison import RESAMPLES
from regnet_explore.analysis.latency import (
    PRECISIONS,
    SHIPPED_LATENCY,
    LatencyConfig,
    MixedRunsWarning,
    device_slug,
    load_latency,
    run_latency,
)
from regnet_explore.analysis.latency_analysis import analyse, format_analysis
from regnet_explore.analysis.shipped import RESULTS_DIR, STUDY_SPACES
from regnet_explore.analysis.sweep import DEFAULT_DETECTOR, load_results
from regnet_explore.errors import RegNetExploreError, one_line_warnings
from regnet_explore.settings import POSITIVE, arg


def _sweeps(args: argparse.Namespace) -> list[Path]:
    sweeps = [RESULTS_DIR / s for s in STUDY_SPACES] if args.shipped else [Path(s) for s in args.sweep]
    if not sweeps:
        raise RegNetExploreError("give sweep directories, or --shipped")
    missing = [str(s) for s in sweeps if not s.is_dir()]
    if missing:
        raise RegNetExploreError(f"{', '.join(missing)}: no such sweep directory")
    return sweeps


def _progress(row: dict, count: list[int]) -> None:
    count[0] += 1
    what = f"{row['total_ms']:8.1f} ms" if row["status"] == "ok" else f"failed: {row['reason']}"
    print(f"[{count[0]}] {row['space']}-{row['index']} {row['precision']}: {what}", flush=True)


def run_latency_command(args: argparse.Namespace) -> int:
    sweeps = _sweeps(args)
    out = args.out or str(Path("sweeps/latency") / f"{'shipped' if args.shipped else 'sweep'}-"
                                                   f"{device_slug(args.device)}.jsonl")
    cfg = LatencyConfig(sweeps=tuple(str(s) for s in sweeps), out=out, precisions=tuple(args.precision),
                        device=args.device, detector=args.config, warmup=args.warmup, frames=args.frames,
                        points=args.points, compile=args.compile, limit=args.limit)
    count = [0]
    with one_line_warnings("latency", MixedRunsWarning):
        table = run_latency(cfg, on_row=lambda row: _progress(row, count))
    failed = int((table["status"] != "ok").sum())
    print(f"latency: {len(table)} rows in {out} ({count[0]} timed now, {failed} failed)")
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    sweeps = _sweeps(args)
    tables = [Path(t) for t in args.table] or (sorted(SHIPPED_LATENCY.glob("*.jsonl")) if args.shipped else [])
    if not tables:
        raise RegNetExploreError("give latency tables (--table FILE), or --shipped")
    import pandas as pd

    latency = pd.concat([load_latency(t) for t in tables], ignore_index=True)
    results = analyse(latency, {s.name: load_results(s) for s in sweeps}, args.budget,
                      permutations=args.permutations)
    print(json.dumps(results, indent=1, default=float) if args.json else format_analysis(results))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="time every model of sweeps as the deployable detector (resumable)")
    p.add_argument("sweep", nargs="*", metavar="DIR", help="sweep directories whose finished models are timed")
    p.add_argument("--shipped", action="store_true", help="the shipped study's two spaces")
    p.add_argument("--out", metavar="OUT_FILE",
                   help="the latency table to append to (default: sweeps/latency/<which>-<device>.jsonl)")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"],
                   help=f"per device: {'; '.join(f'{d}: {chr(32).join(v)}' for d, v in PRECISIONS.items())}")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--config", default=DEFAULT_DETECTOR, help="the base detector each backbone goes into")
    p.add_argument("--warmup", type=arg(LatencyConfig, "warmup"), default=LatencyConfig.warmup,
                   help="untimed frames first")
    p.add_argument("--frames", type=arg(LatencyConfig, "frames"), default=LatencyConfig.frames,
                   help="timed frames (the median is kept)")
    p.add_argument("--points", metavar="FILE",
                   help="the frame to time (.npy (N, C) or .bin of float32 rows of 5); default: the "
                                    "densest mini_val frame of the synthetic set, 10 sweeps")
    p.add_argument("--compile", action="store_true", help="the dense part under torch.compile (seconds a model)")
    p.add_argument("--limit", type=arg(LatencyConfig, "limit"), help="time the first N models of each sweep only")
    p.set_defaults(func=run_latency_command)
    p = sub.add_parser("latency-report", help="latency against complexity and error: correlations, Pareto "
                                              "front, best model under latency budgets")
    p.add_argument("sweep", nargs="*", metavar="DIR", help="the sweep directories the table timed")
    p.add_argument("--table", nargs="+", default=[], metavar="FILE", help="latency tables")
    p.add_argument("--shipped", action="store_true", help="the shipped study and its shipped latency tables")
    p.add_argument("--budget", type=POSITIVE.parse, nargs="+", help="latency budgets in ms (default: percentiles)")
    p.add_argument("--permutations", type=RESAMPLES.parse, default=10_000)
    p.add_argument("--json", action="store_true", help="every figure as JSON")
    p.set_defaults(func=run_report_command)
