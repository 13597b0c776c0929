"""How good is the sweep's proxy task? Cost, seed noise and rank fidelity, measured (docs/sweeps.md, "The proxy").

Runs (resumably, skipping what the directories already hold) the sweeps the three figures need, all with the
``--proxy`` preset, then prints them and writes ``<out>/quality.json``:

- population: the first ``--population`` RegNetX models (``<out>/regnetx``, the study's own directory);
- noise: the first ``--noise-models`` of them trained again with training seeds 1 .. ``--seeds``-1
  (``<out>/seed-<s>``; seed 0 is the population's row). Figure: the seed standard deviation of the error (the root
  mean square over models of the per-model standard deviation, ddof 1) against the interquartile range of the
  population's errors; the bar is std <= IQR / 4. Beside it, the same figure for the same models with init seeds
  1 .. ``--seeds``-1 alone (``<out>/init-<s>``: other initial weights on the sweep's own data order and
  augmentation), and for all their runs pooled (the better estimate of one run's noise);
- fidelity: the first ``--fidelity-models`` trained with ``--factor`` times the budget (``<out>/fidelity-<f>x``).
  Figure: Spearman's rank correlation of proxy error and long-budget error with a 95 % bootstrap interval
  (scipy.stats.bootstrap, paired resampling of models); the bar is rho >= 0.6. Beside it, whether a longer budget
  would meet the noise bar: the noise models at ``--factor`` times the budget with training seeds 1 ..
  ``--long-seeds``-1 (``<out>/fidelity-<f>x-seed-<s>``), their seed standard deviation against the IQR of the long
  runs' errors;
- cost: per model, wall seconds in its worker and the sweep's throughput (models/hour) of the runs made now;
- with ``--runs K``: the same figures for the proxy that scores a network by the mean of K runs (``sweep --proxy
  --runs K``). Run r of training seed t is the 1-run sweep of seed t * K + r, so the figures come from 1-run
  tables: the population's networks with seeds 0 .. K-1 (``<out>/regnetx``, ``<out>/seed-<s>``), the noise models
  with seeds 0 .. ``--seeds`` * K - 1 (K at a time make one of the K-run proxy's seeds); a model's cost is K runs;
- with ``--replica DIR``: a second run of the population's networks (another training seed, or the same commands on
  another kind of CPU, which acts as one), paired network by network. Figure: one run's noise from the paired
  differences, std(difference) / sqrt(2) with a 95 % bootstrap interval, against the population's IQR (the same
  bar from every network instead of four), the test-retest correlation of the two runs, and the same bar for a
  proxy that scores a network by the mean of its two runs.

    python benchmarks/proxy_quality.py --out sweeps/proxy [--workers 2] [--report-only] [--replica DIR | --runs K]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from regnet_explore.analysis.sweep import PROXY, SweepConfig, load_results, run_seeds, run_sweep
from regnet_explore.io import write_json_atomic


def proxy(args: argparse.Namespace, name: str, samples: int, **changes) -> SweepConfig:
    settings = {**PROXY, "budget": args.budget, **changes}
    return SweepConfig(**settings, space="regnetx", samples=samples, out=str(Path(args.out) / name),
                       workers=args.workers)


def plan(args: argparse.Namespace) -> list[SweepConfig]:
    """Every sweep the figures need, cheapest first: the noise models with all their seeds (a first noise figure
    against the partial population), then the rest of the population, then the long runs."""
    k = args.runs
    runs = [proxy(args, "regnetx", args.noise_models)]
    runs += [proxy(args, f"seed-{s}", args.noise_models, train_seed=s) for s in range(1, args.seeds * k)]
    if k == 1:
        runs += [proxy(args, f"init-{s}", args.noise_models, init_seed=s) for s in range(1, args.seeds)]
    runs.append(proxy(args, "regnetx", args.population))
    runs += [proxy(args, f"seed-{s}", args.population, train_seed=s) for s in range(1, k)]
    if args.fidelity_models:
        long = args.budget * args.factor
        runs.append(proxy(args, f"fidelity-{args.factor}x", args.fidelity_models, budget=long))
        runs += [proxy(args, f"fidelity-{args.factor}x-seed-{s}", args.noise_models, budget=long, train_seed=s)
                 for s in range(1, args.long_seeds)]
    return runs


def spearman_with_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    rho = stats.spearmanr(a, b).statistic
    boot = stats.bootstrap((a, b), lambda x, y: stats.spearmanr(x, y).statistic, paired=True, vectorized=False,
                           n_resamples=2000, confidence_level=0.95, method="percentile",
                           random_state=np.random.default_rng(seed))
    low, high = boot.confidence_interval
    return float(rho), float(low), float(high)


def seed_errors(out: Path, population: pd.DataFrame, kind: str, models: int, seeds: int) -> pd.DataFrame:
    """Errors of the first ``models`` networks, one column per seed (0: the population's row; s: ``<kind>-<s>``),
    for the models that have every seed so far."""
    columns = [population[population["index"] < models][["index", "error"]].assign(seed=0)]
    for s in range(1, seeds):
        table = load_results(out / f"{kind}-{s}") if (out / f"{kind}-{s}").is_dir() else pd.DataFrame()
        if len(table):
            columns.append(table[["index", "error"]].assign(seed=s))
    return pd.concat(columns).pivot(index="index", columns="seed", values="error").dropna()


def paired_noise(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float, float]:
    """One run's noise from two runs of the same networks: std(a - b) / sqrt(2) (ddof 1) with its 95 % bootstrap
    interval (networks resampled), and the Pearson correlation of the two runs."""
    def std(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.std(x - y, ddof=1) / math.sqrt(2))

    boot = stats.bootstrap((a, b), std, paired=True, vectorized=False, n_resamples=2000, confidence_level=0.95,
                           method="percentile", random_state=np.random.default_rng(seed))
    low, high = boot.confidence_interval
    return std(a, b), float(low), float(high), float(stats.pearsonr(a, b).statistic)


def iqr(values) -> float:
    """Interquartile range (NaN for no values)."""
    return float(np.subtract(*np.percentile(values, [75, 25]))) if len(values) else math.nan


def noise_std(by_model: pd.DataFrame) -> float:
    """Root mean square over models of the per-model standard deviation (ddof 1) of the error."""
    return float(np.sqrt((by_model.std(axis=1, ddof=1) ** 2).mean())) if by_model.shape[1] > 1 else np.nan


def std_interval(std: float, by_model: pd.DataFrame) -> tuple[float, float]:
    """95 % interval of the pooled seed standard deviation of ``by_model`` (models x seeds), the chi-square one for
    normal errors with one standard deviation for all models: models x (seeds - 1) degrees of freedom. With 4 models
    x 3 seeds (8 of them) it spans 0.68x to 1.92x the estimate."""
    dof = by_model.shape[0] * (by_model.shape[1] - 1)
    if dof < 1 or not np.isfinite(std):
        return math.nan, math.nan
    return (float(std * math.sqrt(dof / stats.chi2.ppf(0.975, dof))),
            float(std * math.sqrt(dof / stats.chi2.ppf(0.025, dof))))


def _table(by_model: pd.DataFrame) -> dict[int, list[float]]:
    return {int(i): [round(v, 4) for v in row] for i, row in by_model.iterrows()}


def mean_of_runs(by_seed: pd.DataFrame, k: int) -> pd.DataFrame:
    """1-run errors (one column per training seed 0, 1, ...) as the K-run proxy's: column p the mean of the 1-run
    seeds of its training seed p (``sweep.run_seeds``), for the p whose seeds are all there."""
    groups = [[seed for seed, _ in run_seeds(SweepConfig(runs=k, train_seed=p))] for p in range(by_seed.shape[1] // k)]
    return pd.DataFrame({p: by_seed[seeds].mean(axis=1) for p, seeds in enumerate(groups)
                         if all(seed in by_seed.columns for seed in seeds)}, index=by_seed.index)


def figures(args: argparse.Namespace, throughput: dict | None) -> dict:
    out, k = Path(args.out), args.runs
    runs = load_results(out / "regnetx")
    runs = runs[runs["index"] < args.population]
    # a network's error: its one run's, or the mean of its runs with seeds 0 .. k-1 (for the networks that have all)
    population = runs if k == 1 else (
        mean_of_runs(seed_errors(out, runs, "seed", args.population, k), k)[0].rename("error").reset_index())
    result: dict = {"population": len(population)}
    errors = population["error"].to_numpy()
    result.update(iqr=iqr(errors), median_error=float(np.median(errors)) if len(errors) else None)

    full = mean_of_runs(seed_errors(out, runs, "seed", args.noise_models, args.seeds * k), k)
    # the init-seed runs are 1-run tables of another seed's data order: a figure of the 1-run proxy only
    init = seed_errors(out, runs, "init", args.noise_models, args.seeds) if k == 1 else full[[0]]
    # every run of each noise model at once (seed 0, training seeds, init seeds): the better estimate of one run's noise
    pooled = full.join(init.drop(columns=0), rsuffix="_init", how="inner")
    for key, by_model in (("seed", full), ("init_seed", init), ("pooled", pooled)):
        std = noise_std(by_model)
        result.update({f"{key}_std": std, f"{key}_runs": int(by_model.size),
                       f"{key}_ratio": std / result["iqr"] if result["iqr"] else None})
    result.update(noise_models=len(full), seeds=full.shape[1], noise_ratio=result.pop("seed_ratio"),
                  seed_errors=_table(full), init_seed_errors=_table(init))
    low, high = std_interval(result["seed_std"], full)
    result.update(seed_std_ci=[low, high], noise_ratio_ci=[low / result["iqr"], high / result["iqr"]]
                  if result["iqr"] else None)
    result["noise_ok"] = bool(len(full) >= args.noise_models and full.shape[1] >= args.seeds
                              and len(population) >= args.population and 0 < result["iqr"]
                              and result["seed_std"] <= result["iqr"] / 4)

    fidelity_dir = out / f"fidelity-{args.factor}x"
    if fidelity_dir.is_dir() and len(load_results(fidelity_dir)):
        long_runs = load_results(fidelity_dir)[["index", "error"]]
        pair = population[["index", "error"]].merge(long_runs.rename(columns={"error": "long"}), on="index")
        result.update(fidelity_models=len(pair), proxy_errors=pair["error"].round(4).tolist(),
                      long_errors=pair["long"].round(4).tolist())
        if len(pair) >= 3:
            rho, low, high = spearman_with_interval(pair["error"].to_numpy(), pair["long"].to_numpy())
            result.update(spearman=rho, spearman_ci=[low, high])
            result["fidelity_ok"] = bool(len(pair) >= args.fidelity_models and rho >= 0.6)
        # the noise bar at the long budget: the same networks' seed noise against the long runs' spread
        long_iqr = iqr(pair["long"])
        by_model = seed_errors(out, long_runs, f"fidelity-{args.factor}x-seed", args.noise_models, args.long_seeds)
        std = noise_std(by_model)
        result.update(long_iqr=long_iqr, long_seed_std=std, long_seed_runs=int(by_model.size),
                      long_noise_ratio=std / long_iqr if long_iqr > 0 else None, long_seed_errors=_table(by_model))

    if args.replica:
        replica = load_results(args.replica)[["index", "error"]].rename(columns={"error": "replica"})
        pair = population[["index", "error"]].merge(replica, on="index")
        if len(pair) >= 3:
            std, low, high, r = paired_noise(pair["error"].to_numpy(), pair["replica"].to_numpy())
            result.update(replica=str(args.replica), replica_models=len(pair), replica_std=std,
                          replica_std_ci=[low, high], replica_ratio=std / result["iqr"] if result["iqr"] else None,
                          replica_iqr=iqr(pair["replica"]), replica_pearson=r)
            # a proxy that averages two runs per network: its noise is std / sqrt(2), its spread the means' IQR
            means_iqr = iqr((pair["error"] + pair["replica"]) / 2)
            result.update(mean2_std=std / math.sqrt(2), mean2_iqr=means_iqr,
                          mean2_ratio=std / math.sqrt(2) / means_iqr if means_iqr > 0 else None)

    trained = runs[runs.get("resumed_from", pd.Series(0, index=runs.index)).fillna(0) == 0]
    result.update(per_model_wall_s=k * float(trained["wall_s"].median()) if len(trained) else None,
                  iterations=int(trained["iterations"].median()) if len(trained) else None,
                  samples_per_s=float(trained["samples_per_s"].median()) if len(trained) else None)
    if throughput:
        result.update(throughput)
        result["cost_ok"] = bool(throughput["s_per_model"] <= 60)
    return result


def _f(value, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def report(r: dict, factor: int, runs: int = 1) -> str:
    each = "" if runs == 1 else f" (the mean of {runs} runs each)"
    ratio_ci = r["noise_ratio_ci"] or [None, None]
    lines = [f"population: {r['population']} RegNetX models{each}, error median {_f(r['median_error'])}, "
             f"IQR {_f(r['iqr'])}",
             f"noise: {r['noise_models']} models x {r['seeds']} seeds{each}, seed std {_f(r['seed_std'])} = "
             f"{_f(r['noise_ratio'], 2)} x IQR (bar: <= 0.25) -> {'ok' if r['noise_ok'] else 'NOT MET'}",
             f"       95 % interval of that std (chi-square, {r['noise_models']} x ({r['seeds']} - 1) degrees of "
             f"freedom): [{_f(r['seed_std_ci'][0])}, {_f(r['seed_std_ci'][1])}] = "
             f"[{_f(ratio_ci[0], 2)}, {_f(ratio_ci[1], 2)}] x IQR"]
    if r.get("init_seed_runs", 0) > r["noise_models"]:
        lines.append(f"       initialization alone (init seeds on the sweep's data order, {r['init_seed_runs']} "
                     f"runs): std {_f(r['init_seed_std'])} = {_f(r['init_seed_ratio'], 2)} x IQR")
        lines.append(f"       all {r['pooled_runs']} runs of the {r['noise_models']} models pooled: std "
                     f"{_f(r['pooled_std'])} = {_f(r['pooled_ratio'], 2)} x IQR")
    if "replica_std" in r:
        low, high = r["replica_std_ci"]
        lines.append(f"       paired with {r['replica']} ({r['replica_models']} networks run twice): one run's std "
                     f"{_f(r['replica_std'])}, 95 % bootstrap [{_f(low)}, {_f(high)}] = {_f(r['replica_ratio'], 2)} "
                     f"x IQR; the replica's IQR {_f(r['replica_iqr'])}, test-retest Pearson r "
                     f"{_f(r['replica_pearson'], 3)}")
        lines.append(f"       the mean of the two runs as a network's error: std {_f(r['mean2_std'])} = "
                     f"{_f(r['mean2_ratio'], 2)} x the means' IQR {_f(r['mean2_iqr'])} (at twice the cost)")
    if "spearman" in r:
        low, high = r["spearman_ci"]
        lines.append(f"fidelity: {r['fidelity_models']} models, Spearman rho (proxy vs {factor}x budget) "
                     f"{_f(r['spearman'], 3)}, 95 % bootstrap [{_f(low, 3)}, {_f(high, 3)}] (bar: >= 0.6) -> "
                     f"{'ok' if r['fidelity_ok'] else 'NOT MET'}")
    long_models = len(r.get("long_seed_errors", {}))
    if r.get("long_seed_runs", 0) > long_models and r["long_noise_ratio"] is not None:
        lines.append(f"          at {factor}x the budget: seed std {_f(r['long_seed_std'])} ({r['long_seed_runs']} "
                     f"runs of {long_models} models) = {_f(r['long_noise_ratio'], 2)} x the long runs' error IQR "
                     f"{_f(r['long_iqr'])} (the noise bar, <= 0.25, at that budget)")
    if r["per_model_wall_s"] is not None:
        runs_each = "" if runs == 1 else f" ({runs} runs)"
        lines.append(f"cost: {r['per_model_wall_s']:.1f} s a model{runs_each} in its worker (median of those trained "
                     f"here), {r['iterations']} iterations at {r['samples_per_s']:.2f} samples/s")
    if "models_per_hour" in r:
        lines.append(f"      sweep throughput now: {r['models_trained']} {'models' if runs == 1 else 'runs'} in "
                     f"{r['run_wall_s']:.0f} s with "
                     f"{r['workers']} workers = {r['models_per_hour']:.1f} models/hour, {r['s_per_model']:.1f} s "
                     f"a model (bar: <= 60) -> {'ok' if r['cost_ok'] else 'NOT MET'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sweeps/proxy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--noise-models", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fidelity-models", type=int, default=12)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--long-seeds", type=int, default=2, help="training seeds of the noise models at the long "
                        "budget (1: none beyond the fidelity runs)")
    parser.add_argument("--budget", type=int, default=PROXY["budget"], help="the proxy's (change only to try this)")
    parser.add_argument("--runs", type=int, default=1, help="the figures of the proxy that averages this many "
                        "runs a network (sweep --runs), from 1-run tables of consecutive seeds; written to "
                        "quality-<K>-runs.json")
    parser.add_argument("--report-only", action="store_true", help="no training: the figures of what is there")
    parser.add_argument("--replica", type=Path, help="a sweep directory with a second run of the population's "
                        "networks (another seed or another CPU kind): one run's noise from every network")
    args = parser.parse_args()
    if args.replica is not None and not any(args.replica.glob("results*.jsonl")):
        parser.error(f"{args.replica}: no results table (results*.jsonl) there")
    if args.runs < 1 or (args.runs > 1 and args.replica is not None):
        parser.error("--runs must be a positive integer, and 1 with --replica (a replica is a second single run)")
    throughput = None
    if not args.report_only:
        trained, wall = 0, 0.0
        for cfg in plan(args):
            print(f"== {Path(cfg.out).name}: {cfg.samples} models, budget {cfg.budget}, train seed "
                  f"{cfg.train_seed if cfg.train_seed is not None else cfg.seed}, init seed "
                  f"{cfg.init_seed if cfg.init_seed is not None else 'the same'}", flush=True)
            start = time.perf_counter()
            old = load_results(cfg.out) if any(Path(cfg.out).glob("results*.jsonl")) else pd.DataFrame()
            before = set(old.get("index", []))
            table = run_sweep(cfg)
            made = table[~table["index"].isin(before)]
            rescored = int((made.get("resumed_from", pd.Series(0, index=made.index)).fillna(0) > 0).sum())
            if rescored:  # models scored from finished checkpoints: their wall time is not a model's cost
                print(f"   {rescored} models were scored from finished checkpoints: no throughput figure from this run")
                trained, wall = 0, math.nan
            elif cfg.budget == args.budget:  # the throughput is the proxy's: the long runs are left out
                trained += table.attrs["trained"]
                wall += time.perf_counter() - start
        if trained and math.isfinite(wall):
            # a model of the proxy is args.runs of the runs trained here
            throughput = dict(models_trained=trained, run_wall_s=wall, workers=args.workers,
                              models_per_hour=3600 * trained / wall / args.runs, s_per_model=wall / trained * args.runs)
    result = figures(args, throughput)
    print(report(result, args.factor, args.runs))
    path = Path(args.out) / ("quality.json" if args.runs == 1 else f"quality-{args.runs}-runs.json")
    old = json.loads(path.read_text()) if path.exists() else {}
    if throughput is None and "models_per_hour" in old:  # keep the last measured throughput
        result.update({k: old[k] for k in ("models_trained", "run_wall_s", "workers", "models_per_hour",
                                           "s_per_model", "cost_ok") if k in old})
    settings = {**dataclasses.asdict(SweepConfig(**PROXY)), **vars(args), "replica": result.get("replica")}
    write_json_atomic({**result, "settings": settings}, path)


if __name__ == "__main__":
    main()
