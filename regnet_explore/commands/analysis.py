"""``regnet-explore sweep`` (train a population of sampled backbones) and ``sweep-report`` (its results table)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import pandas as pd

from regnet_explore.analysis.comparison import ComparisonSettings, compare, format_comparison
from regnet_explore.analysis.fidelity import fidelity_report
from regnet_explore.analysis.sampling import SPACES
from regnet_explore.analysis.shipped import (
    RESULTS_DIR,
    STUDY_SPACES,
    shipped_comparison_settings,
    shipped_fidelity,
    shipped_seed_mean_fidelity,
)
from regnet_explore.analysis.sweep import (
    BACKENDS,
    DEFAULT_DETECTOR,
    PROXY,
    MixedCPUWarning,
    SweepConfig,
    finished,
    load_results,
    recipe,
    run_sweeps,
)
from regnet_explore.analysis.sweep.report import describe, report
from regnet_explore.commands.arguments import RECIPE_OPTIONS, add_recipe_arguments, int_list
from regnet_explore.errors import RegNetExploreError, one_line_warnings
from regnet_explore.settings import NON_NEGATIVE, POSITIVE, arg
from regnet_explore.train.engine import TrainConfig


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r}: give I/N with 0 <= I < N, e.g. 0/4")
    return int(i), int(n)


def _size(text: str) -> tuple[int, int]:
    scenes, sep, keys = text.partition("x")
    if not (sep and scenes.isdigit() and keys.isdigit() and int(scenes) > 0 and int(keys) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give SCENESxKEYFRAMES, e.g. 40x4")
    return int(scenes), int(keys)


def _window(low: float | None, high: float | None, unit: float) -> tuple[float, float] | None:
    if low is None and high is None:
        return None
    return (low or 0.0) * unit, high * unit if high is not None else sys.float_info.max


def _progress(row: dict, count: list[int]) -> None:
    count[0] += 1
    if not finished(row):
        print(f"[{count[0]}] {row['space']} model {row['index']:>4}  failed: {row['reason']}", flush=True)
        return
    print(f"[{count[0]}] {row['space']} model {row['index']:>4}  {row['flops'] / 1e9:8.3f} GFLOPs  "
          f"error {row['error']:.4f}  {row['wall_s']:7.1f} s  (worker {row['worker']}, {row['device']})", flush=True)


def _sweep_configs(args: argparse.Namespace) -> list[SweepConfig]:
    """The command line's settings, one sweep per space (several: each in ``OUT/<space>``); with ``--proxy`` the
    preset's values fill what the command leaves unset."""
    if len(set(args.space)) < len(args.space):
        raise RegNetExploreError(f"spaces {' '.join(args.space)}: name each space once")
    cfg = _sweep_config(args)
    if len(args.space) == 1:
        return [dataclasses.replace(cfg, space=args.space[0])]
    return [dataclasses.replace(cfg, space=space, out=str(Path(args.out) / space)) for space in args.space]


def _sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The settings the spaces share; with ``--proxy`` the preset's values (its recipe's too) fill what the command
    leaves unset."""
    given = dict(samples=args.samples, seed=args.seed, train_seed=args.train_seed, init_seed=args.init_seed,
                 runs=args.runs, detector=args.config, data=args.data, version=args.version, budget=args.budget,
                 classes=args.classes, neck_channels=args.neck_channels, encoder_channels=args.encoder_channels,
                 max_points=args.max_points, flops=_window(args.flops_min, args.flops_max, 1e9),
                 params=_window(args.params_min, args.params_max, 1e6), metric=args.metric, out=args.out,
                 workers=args.workers, devices=tuple(args.device or ()), shard=args.shard, backend=args.backend,
                 address=args.address, cpus_per_model=args.cpus_per_model, gpus_per_model=args.gpus_per_model,
                 max_retries=args.max_retries, retry_failed=args.retry_failed, synthetic=args.synthetic,
                 val_synthetic=args.val_synthetic)
    given = {k: v for k, v in given.items() if v is not None}
    training = {name: getattr(args, name) for name in RECIPE_OPTIONS if getattr(args, name) is not None}
    if args.proxy:
        preset = {k: v for k, v in PROXY.items() if not (k in ("synthetic", "val_synthetic") and "data" in given)}
        return SweepConfig(**{**preset, **given, "train": dataclasses.replace(PROXY["train"], **training)})
    if args.budget is None:
        raise RegNetExploreError("--budget is required (or --proxy, which sets it)")
    return SweepConfig(**given, train=recipe(args.budget, **training))


def run_sweep_command(args: argparse.Namespace) -> int:
    cfgs = _sweep_configs(args)
    count = [0]
    with one_line_warnings("sweep", MixedCPUWarning):
        tables = run_sweeps(cfgs, on_row=lambda row: _progress(row, count))
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    for cfg, table in zip(cfgs, tables):
        _summary(cfg, table)
    return 0


def _summary(cfg: SweepConfig, table: pd.DataFrame) -> None:
    a = table.attrs
    rejected = ", ".join(f"{k} {v}" for k, v in a["rejected"].items() if v) or "none"
    failed = f", {a['failed']} failed (--retry-failed trains them again)" if a["failed"] else ""
    print(f"sweep {cfg.space}: {len(table)} models in {cfg.out} ({a['trained']} trained now{failed}); sampled "
          f"{cfg.samples} of {a['drawn']} draws in {a['sampling_s']:.1f} s, rejected: {rejected}")
    if len(table):
        best = table.loc[table["error"].idxmin()]
        print(f"best error {best['error']:.4f} ({cfg.metric}), model {best['index']}: {describe(best)}")


def run_report_command(args: argparse.Namespace) -> int:
    outs = [RESULTS_DIR / name for name in STUDY_SPACES] if args.shipped else [Path(o) for o in args.out]
    if not outs or len(outs) > 2:
        raise RegNetExploreError("sweep-report takes one sweep directory, two to compare, or --shipped")
    result = dict(sweeps=[str(o) for o in outs])
    text = [report(o) for o in outs]
    if len(outs) == 2:
        tables = {o.name: load_results(o) for o in outs}
        result["comparison"] = compare(tables, _comparison_settings(args), progress=sys.stderr.isatty())
        text.append(format_comparison(result["comparison"]))
    fidelities = dict(rank_fidelity=shipped_fidelity(), rank_fidelity_seed_mean=shipped_seed_mean_fidelity()) \
        if args.shipped else {}
    for key, fidelity in fidelities.items():
        if fidelity is not None:
            result[key] = fidelity
            text.append(fidelity_report(fidelity))
    print(json.dumps(result, indent=1, default=float) if args.json else "\n\n".join(text))
    return 0


def _comparison_settings(args: argparse.Namespace) -> ComparisonSettings:
    settings = ComparisonSettings(margin=args.margin, noise=args.noise, noise_source="--noise" if args.noise is not None
                                  else "", shift=args.shift, permutations=args.permutations,
                                  simulations=args.simulations, seed=args.seed, cpu=args.cpu)
    return shipped_comparison_settings(settings) if args.shipped else settings


def _proxy_help() -> str:
    """The preset as the help text lists it: its sweep settings and what its recipe changes."""
    recipe, default = PROXY["train"], TrainConfig()
    changed = [f"{f.name} {getattr(recipe, f.name)}" for f in dataclasses.fields(TrainConfig)
               if getattr(recipe, f.name) != getattr(default, f.name)]
    return ", ".join([*(f"{k} {v}" for k, v in PROXY.items() if k != "train"), *changed])


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", nargs="+", choices=SPACES,
                   help="design space to sample; several: their sweeps (each in OUT/SPACE) are trained as one "
                        "stream that alternates between the spaces, so each machine trains all in equal numbers")
    p.add_argument("--samples", type=arg(SweepConfig, "samples"), required=True,
                   help="models in the sweep (a larger N extends it)")
    p.add_argument("--budget", type=arg(SweepConfig, "budget"),
                   help="training iterations per model (required without --proxy)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="sweep directory (rerun the same command to resume)")
    p.add_argument("--proxy", action="store_true",
                   help=f"the documented proxy task (docs/sweeps.md): {_proxy_help()}; options given on the command "
                        "line override it")
    _add_sampling_arguments(p.add_argument_group("sampling and scoring"))
    _add_data_arguments(p.add_argument_group("data"))
    _add_detector_arguments(p.add_argument_group("the detector around each backbone"))
    add_recipe_arguments(p.add_argument_group("training recipe (TrainConfig)"), None,
                         "a tenth of the budget; --proxy: 50")
    _add_runner_arguments(p.add_argument_group("where and how the models run"))
    p.set_defaults(func=run_sweep_command)


def _add_sampling_arguments(g: argparse._ArgumentGroup) -> None:
    d = SweepConfig()
    g.add_argument("--seed", type=arg(SweepConfig, "seed"), default=d.seed, help="sampling and training seed")
    g.add_argument("--train-seed", type=arg(SweepConfig, "train_seed"),
                   help="training seed (default: --seed): the same sampled networks from other initial weights "
                        "and data order")
    g.add_argument("--init-seed", type=arg(SweepConfig, "init_seed"),
                   help="initial weights' seed alone (default: the training seed): other initial weights, the same "
                        "data order and augmentation")
    g.add_argument("--runs", type=arg(SweepConfig, "runs"),
                   help=f"training runs a model (default {d.runs}), with training seeds T*RUNS .. T*RUNS+RUNS-1 "
                        "for training seed T; its error is their mean (--proxy --runs 2: the proxy whose noise "
                        "meets the bar, at twice the cost; docs/sweeps.md)")
    g.add_argument("--flops-min", type=NON_NEGATIVE.parse,
                   help="GFLOPs (multiply-adds) of the backbone on the training grid")
    g.add_argument("--flops-max", type=POSITIVE.parse)
    g.add_argument("--params-min", type=NON_NEGATIVE.parse, help="millions of backbone parameters")
    g.add_argument("--params-max", type=POSITIVE.parse)
    g.add_argument("--metric", help=f"error = 1 - METRIC: mAP, NDS (nuScenes) or AP_<class> (default {d.metric})")


def _add_data_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--data", metavar="DIR", help="dataroot (default: the synthetic mini set of the config's dataset)")
    g.add_argument("--synthetic", type=_size, metavar="SCENESxKEYFRAMES",
                   help="without --data: a synthetic set of this size (generated on first use), e.g. 40x4")
    g.add_argument("--val-synthetic", type=_size, metavar="SCENESxKEYFRAMES",
                   help="without --data: score on the validation split of a synthetic set of this size instead")
    g.add_argument("--version", help="dataset version (v1.0-mini, v1.0-trainval, v1.01-train)")


def _add_detector_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--config", default=DEFAULT_DETECTOR, help="base detector config whose backbone is replaced")
    g.add_argument("--classes", nargs="+", help="train and score a subset of the config's classes, e.g. car")
    g.add_argument("--neck-channels", type=arg(SweepConfig, "neck_channels"),
                   help="FPN output width (the config's: 256)")
    g.add_argument("--encoder-channels", type=int_list,
                   help="pillar encoder layer widths, e.g. 64 (the config's: 64,64)")
    g.add_argument("--max-points", type=arg(SweepConfig, "max_points"),
                   help="points kept per pillar (the config's: 64)")


def _add_runner_arguments(g: argparse._ArgumentGroup) -> None:
    d = SweepConfig()
    g.add_argument("--workers", type=arg(SweepConfig, "workers"), default=d.workers,
                   help="models trained at a time (local processes)")
    g.add_argument("--device", nargs="+", help="devices, worker i uses the i-th (round robin), e.g. cuda:0 cuda:1")
    g.add_argument("--shard", type=_shard, default=d.shard, metavar="I/N",
                   help="train only the models whose index is I modulo N (one job of an array)")
    g.add_argument("--backend", choices=BACKENDS, default=d.backend,
                   help="local: --workers processes here; ray: one Ray task per model (pip install "
                        "'regnet_explore[cluster]')")
    g.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    g.add_argument("--cpus-per-model", type=arg(SweepConfig, "cpus_per_model"), default=d.cpus_per_model,
                   help="Ray: CPUs (torch threads) a model")
    g.add_argument("--gpus-per-model", type=arg(SweepConfig, "gpus_per_model"), default=d.gpus_per_model,
                   help="Ray: GPUs a model (> 0: CUDA)")
    g.add_argument("--max-retries", type=arg(SweepConfig, "max_retries"), default=d.max_retries,
                   help="Ray: reruns of a model whose worker died, each resuming its latest.pth")
    g.add_argument("--retry-failed", action="store_true", help="train again the models whose row says failed")


def register(sub: argparse._SubParsersAction) -> None:
    add_sweep_arguments(sub.add_parser("sweep", help="train and score models sampled from a design space"))
    p = sub.add_parser("sweep-report", help="summary of a sweep's results table, or two compared (KS test)")
    p.add_argument("out", nargs="*", metavar="DIR", help="one sweep directory, or two to compare")
    p.add_argument("--shipped", action="store_true",
                   help="the study shipped in the package (regnetx against anynetxa, analysis/results/)")
    p.add_argument("--json", action="store_true", help="every figure as JSON on stdout instead of the text")
    d = ComparisonSettings()
    p.add_argument("--margin", type=arg(ComparisonSettings, "margin"), default=d.margin,
                   help=f"equivalence margin in error for the two one-sided tests (default {d.margin})")
    p.add_argument("--noise", type=arg(ComparisonSettings, "noise"),
                   help="one run's noise (std of a model's error across training seeds) for the power simulation "
                        "(default: measured from models run more than once, --shipped: the proxy's seed runs)")
    p.add_argument("--shift", type=arg(ComparisonSettings, "shift"),
                   help="report the models per space that detect this shift (default: "
                                               "the margin)")
    p.add_argument("--cpu", help="the CPU kind of rows that record none")
    p.add_argument("--permutations", type=arg(ComparisonSettings, "permutations"), default=d.permutations,
                   help="of the space labels")
    p.add_argument("--simulations", type=arg(ComparisonSettings, "simulations"), default=d.simulations,
                   help="simulated tables a power estimate")
    p.add_argument("--seed", type=arg(ComparisonSettings, "seed"), default=d.seed,
                   help="seed of the permutations, bootstrap and simulations")
    p.set_defaults(func=run_report_command)
