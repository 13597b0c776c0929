"""Latency against complexity and error: which complexity measure predicts a detector's run time on a device, which
models are Pareto-optimal in (latency, error), the best model under a latency budget next to the best under the
FLOPs budget that admits as many models, and the two spaces compared at equal latency.

Input: a latency table (:func:`latency.load_latency`) and the sweeps' results tables; one analysis per device kind
and precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from regnet_explore.analysis import stats
from regnet_explore.analysis.edf import ks_test
from regnet_explore.errors import RegNetExploreError

MEASURES = ("backbone_flops", "backbone_acts", "backbone_params")
UNRECORDED = "not recorded"  # the run of rows timed before each row recorded it


def joined(latency: pd.DataFrame, sweeps: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The timed models with their sweep rows' errors: one row per (model, precision, device kind), ok rows only."""
    ok = latency[latency["status"] == "ok"]
    errors = pd.concat([t[["space", "index", "error"]] for t in sweeps.values()], ignore_index=True)
    return ok.merge(errors, on=["space", "index"], how="inner")


def correlations(table: pd.DataFrame, measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """Per complexity measure: Spearman's rho with total latency (and its p) and R² of log latency on log measure."""
    rows = []
    for m in measures:
        rho = sps.spearmanr(table[m], table["total_ms"])
        fit = sps.linregress(np.log(table[m].to_numpy(float)), np.log(table["total_ms"].to_numpy(float)))
        rows.append(dict(measure=m, spearman=float(rho.statistic), p=float(rho.pvalue), r2_loglog=fit.rvalue**2,
                         slope_loglog=fit.slope, n=len(table)))
    return pd.DataFrame(rows)


def pareto_front(latency: Sequence[float], error: Sequence[float]) -> np.ndarray:
    """Indices of the models no other model beats in both latency and error (lower is better in both; ties in
    both keep the first), in order of latency."""
    lat, err = np.asarray(latency, float), np.asarray(error, float)
    order = np.lexsort((err, lat))
    front, best = [], np.inf
    for i in order:
        if err[i] < best:
            front.append(i)
            best = err[i]
    return np.array(front, dtype=int)


def budget_table(table: pd.DataFrame, budgets_ms: Sequence[float]) -> pd.DataFrame:
    """For each latency budget: the most accurate model under it, and the most accurate under the FLOPs budget that
    admits as many models (the same share of the population), whether they differ, and the latter's latency."""
    flops = np.sort(table["backbone_flops"].to_numpy())
    rows = []
    for budget in budgets_ms:
        under = table[table["total_ms"] <= budget]
        if under.empty:
            rows.append(dict(budget_ms=budget, models_under=0))
            continue
        by_latency = under.loc[under["error"].idxmin()]
        flops_budget = flops[len(under) - 1]
        by_flops = table[table["backbone_flops"] <= flops_budget]
        by_flops = by_flops.loc[by_flops["error"].idxmin()]
        rows.append(dict(budget_ms=budget, models_under=len(under), best=f"{by_latency['space']}-{by_latency['index']}",
                         best_error=by_latency["error"], best_ms=by_latency["total_ms"],
                         flops_budget=float(flops_budget), best_by_flops=f"{by_flops['space']}-{by_flops['index']}",
                         best_by_flops_error=by_flops["error"], best_by_flops_ms=by_flops["total_ms"],
                         differ=bool((by_flops["space"], by_flops["index"]) != (by_latency["space"],
                                                                                by_latency["index"]))))
    return pd.DataFrame(rows)


def default_budgets(table: pd.DataFrame) -> list[float]:
    """Budgets at the 10th, 25th, 50th and 75th percentile of the models' latency, rounded to 5 ms."""
    return [float(5 * round(np.percentile(table["total_ms"], q) / 5)) for q in (10, 25, 50, 75)]


def analyse(latency: pd.DataFrame, sweeps: Mapping[str, pd.DataFrame], budgets_ms: Sequence[float] | None = None,
            permutations: int = 10_000) -> list[dict]:
    """One analysis per (device kind, precision) of the table, as plain data."""
    table = joined(latency, sweeps)
    order = list(dict.fromkeys(s for t in sweeps.values() for s in t["space"].unique()))  # the sweeps' order
    if table.empty:
        raise RegNetExploreError("no timed model of these sweeps in the latency table")
    results = []
    for (device, precision), part in table.groupby(["device_name", "precision"], sort=True):
        part = part.reset_index(drop=True)
        front = pareto_front(part["total_ms"], part["error"])
        budgets = list(budgets_ms) if budgets_ms is not None else default_budgets(part)
        result = dict(device=device, precision=precision, models=len(part),
                      threads=sorted(set(part["threads"])), torch=sorted(set(part["torch"])),
                      points=sorted(set(part["points"])),
                      runs=sorted(set(part["run"].fillna(UNRECORDED))) if "run" in part else [UNRECORDED],
                      median_ms=float(part["total_ms"].median()),
                      stage_share={s: float(part[f"{s}_ms"].sum() / part["total_ms"].sum())
                                   for s in ("voxelize", "encoder", "scatter", "backbone", "neck", "head", "decode")},
                      correlations=correlations(part).to_dict("records"),
                      pareto=part.loc[front, ["space", "index", "total_ms", "error"]].to_dict("records"),
                      budgets=budget_table(part, budgets).to_dict("records"))
        spaces = [s for s in order if s in set(part["space"])]
        if len(spaces) == 2 and all((part["space"] == s).sum() >= 3 for s in spaces):
            a, b = (part[part["space"] == s] for s in spaces)
            shift = stats.adjusted_shift(a, b, covariates=("total_ms",), n_permutations=permutations)
            weights = stats.joint_complexity_weights({s: t for s, t in zip(spaces, (a, b))}, ("total_ms",), bins=4)
            ks = ks_test(a["error"], b["error"], weights[spaces[0]], weights[spaces[1]])
            result["at_equal_latency"] = dict(names=spaces, **shift.to_dict(), ks_D=ks.statistic, ks_p=ks.pvalue,
                                              ks_n_a=ks.n_a, ks_n_b=ks.n_b)
        results.append(result)
    return results


def _runs(runs: Sequence[str]) -> str:
    if list(runs) == [UNRECORDED]:
        return "runs not recorded"
    if len(runs) == 1:
        return f"timed in one run ({runs[0]})"
    return f"timed in {len(runs)} runs (times of separate runs differ by a few per cent)"


def format_analysis(results: Sequence[dict]) -> str:
    """:func:`analyse`'s figures as text."""
    lines = []
    for r in results:
        threads = "/".join(str(t) for t in r["threads"])
        lines.append(f"{r['device']}, {r['precision']}, {threads} thread(s), torch {', '.join(r['torch'])}, "
                     f"{r['points'][0]} points: {r['models']} models, median {r['median_ms']:.0f} ms a frame, "
                     f"{_runs(r['runs'])}")
        share = ", ".join(f"{s} {v:.0%}" for s, v in r["stage_share"].items())
        lines.append(f"  time by stage (all models): {share}")
        for c in r["correlations"]:
            lines.append(f"  latency vs {c['measure'].removeprefix('backbone_')}: Spearman {c['spearman']:+.3f} "
                         f"(p {c['p']:.2g}), R² log-log {c['r2_loglog']:.3f}, slope {c['slope_loglog']:.2f}")
        pareto = ", ".join(f"{p['space']}-{p['index']} ({p['total_ms']:.0f} ms, {p['error']:.3f})" for p in r["pareto"])
        lines.append(f"  Pareto front (latency, error): {pareto}")
        for b in r["budgets"]:
            if not b["models_under"]:
                lines.append(f"  under {b['budget_ms']:g} ms: no model")
                continue
            lines.append(f"  under {b['budget_ms']:g} ms ({b['models_under']} of {r['models']} models): best "
                         f"{b['best']} error {b['best_error']:.3f} at {b['best_ms']:.0f} ms; under "
                         f"{b['flops_budget'] / 1e9:.2f} GFLOPs (as many models): {b['best_by_flops']} error "
                         f"{b['best_by_flops_error']:.3f} at {b['best_by_flops_ms']:.0f} ms"
                         f"{' (another model)' if b['differ'] else ' (the same)'}")
        if "at_equal_latency" in r:
            s = r["at_equal_latency"]
            a, b = s["names"]
            lines.append(f"  {b} - {a} at equal log latency: {s['estimate']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] "
                         f"(95 %, HC3), permutation p = {s['p_permutation']:.3g}; EDFs reweighted to a common latency "
                         f"distribution (4 quantile bins): KS D = {s['ks_D']:.3f}, p = {s['ks_p']:.3g}")
    return "\n".join(lines)


__all__ = ["MEASURES", "analyse", "budget_table", "correlations", "default_budgets", "format_analysis", "joined",
           "pareto_front"]
