"""Rank fidelity of a proxy: do networks keep the proxy's order when trained longer?

The reference is each network's error after a longer run, scored at one strict matching threshold (``AP_car@0.5``,
1 - car AP at 0.5 m) where the four-threshold AP of long runs saturates; its seed noise comes from a few networks
trained again with another training seed. The figure counts as informative only when the reference separates the
networks by at least twice that noise (docs/sweeps.md, the extension's plan). The plan's amendment makes the
reference each network's mean over three training seeds (:func:`seed_mean_fidelity`), its noise that of a mean."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from regnet_explore.analysis.stats import detectable_spearman, spearman_interval
from regnet_explore.analysis.sweep import load_results, read_settings
from regnet_explore.errors import RegNetExploreError

STRICT = "AP_car@0.5"
# a study's sweep folders of the first RegNetX networks at 4x the budget, and of a few of them with another seed
# (benchmarks/rank_fidelity.py)
STRICT_RUNS = ("fidelity-4x-strict", "fidelity-4x-strict-seed-1")
PLANNED_NOISE_MODELS = 4  # the plan's networks with a second seed: the first four (the amendment trained all 24)
# the amendment's reference: training seeds 0, 1 and 2 of every network, at the same budget and scoring
SEED_RUNS = (*STRICT_RUNS, "fidelity-4x-strict-seed-2")
FIDELITY_BAR = 0.6  # the proxy's bar for Spearman rho with longer training (docs/sweeps.md, "Its quality")


def _reference(table: pd.DataFrame, column: str, name: str) -> pd.Series:
    if column not in table:
        raise RegNetExploreError(f"the long runs ({name}) have no {column!r} column (rows scored before per-threshold "
                                 "APs)")
    return (1 - table.set_index("index")[column]).rename(name)


def seed_noise(*runs: pd.Series) -> float:
    """One run's standard deviation of the reference error, from the networks trained with several seeds (one
    series a seed, indexed by network): the root of the mean of their per-network sample variances (NaN when no
    network was trained twice)."""
    table = pd.concat(runs, axis=1, join="inner")
    return float(np.sqrt(table.var(axis=1, ddof=1).mean())) if len(table) and len(runs) > 1 else float("nan")


def noise_interval(noise: float, dof: int, level: float = 0.95) -> tuple[float, float]:
    """The chi-square interval of a pooled standard deviation with ``dof`` degrees of freedom (normal errors of one
    variance across networks)."""
    if not dof:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    low, high = (float(np.sqrt(dof * noise**2 / stats.chi2.ppf(q, dof))) for q in (1 - tail, tail))
    return low, high


def _figures(proxy: pd.DataFrame, runs: pd.DataFrame, noise_runs: pd.DataFrame, four: pd.DataFrame,
             factor: int, reference: str, tables: Sequence[pd.DataFrame]) -> dict:
    """The figures of a reference that is the mean of ``runs``' columns (one a seed, indexed by network), its
    noise measured on ``noise_runs`` (networks x seeds) and divided by the root of the seeds averaged."""
    pair = runs.mean(axis=1).rename("reference").to_frame().join(proxy.set_index("index")["error"], how="inner")
    rho = spearman_interval(pair["error"], pair["reference"], seed=0)
    run_noise = seed_noise(*(noise_runs[c] for c in noise_runs))
    dof = len(noise_runs) * (noise_runs.shape[1] - 1)
    noise = run_noise / np.sqrt(runs.shape[1])
    spread = float(pair["reference"].std(ddof=1))
    cpu = sorted({c for t in tables if "cpu" in t for c in t["cpu"]})
    return dict(models=len(pair), seeds=runs.shape[1], reference=reference, factor=factor, spearman=rho.to_dict(),
                reference_std=spread, reference_noise=noise, run_noise=run_noise,
                run_noise_interval=list(noise_interval(run_noise, dof)), noise_dof=dof, noise_models=len(noise_runs),
                noise_seeds=noise_runs.shape[1], informative=bool(dof >= 2 and spread >= 2 * noise),
                detectable=dict(above_0=detectable_spearman(len(pair)),
                                above_bar=detectable_spearman(len(pair), above=FIDELITY_BAR)),
                four_threshold_std=float(four.loc[pair.index].mean(axis=1).std(ddof=1)),
                proxy_errors=pair["error"].round(4).tolist(), reference_errors=pair["reference"].round(4).tolist(),
                cpu=cpu)


def _errors(tables: Sequence[pd.DataFrame], column: str) -> pd.DataFrame:
    """1 - ``column`` of each table, one column a table (``seed_0`` ...), on the networks every table holds."""
    return pd.concat([_reference(t, column, f"seed_{i}") for i, t in enumerate(tables)], axis=1, join="inner")


def rank_fidelity(proxy: pd.DataFrame, long: pd.DataFrame, again: pd.DataFrame, factor: int,
                  reference: str = STRICT) -> dict:
    """The plan's figure: Spearman's rho between the proxy's errors (``proxy``: the study's table) and the long
    runs' reference errors (``long``: the same networks after ``factor`` x the budget, one run each), with a BCa
    interval; the reference's spread across networks and its seed noise (``again``: some of the long runs with
    another training seed).

    Tables are sweep tables (:func:`sweep.load_results`), matched on the sampling index."""
    runs = _errors([long], reference)
    noise_runs = _errors([long, again], reference) if len(again) else runs.iloc[:0]
    return _figures(proxy, runs, noise_runs, _errors([long], "AP_car"), factor, reference, [long, again])


def seed_mean_fidelity(proxy: pd.DataFrame, seeds: Sequence[pd.DataFrame], factor: int,
                       reference: str = STRICT) -> dict:
    """The amendment's figure: as :func:`rank_fidelity`, the reference being each network's mean over ``seeds``
    (the long runs, one table a training seed, on the networks all of them hold); its noise is one run's seed
    standard deviation pooled over those networks (networks x (seeds - 1) degrees of freedom) over sqrt(seeds)."""
    if len(seeds) < 2:
        raise RegNetExploreError(f"a mean over training seeds needs at least two seeds' runs, got {len(seeds)}")
    runs = _errors(seeds, reference)
    return _figures(proxy, runs, runs, _errors(seeds, "AP_car"), factor, reference, seeds)


def _study(root: Path, names: Sequence[str]) -> tuple[pd.DataFrame, list[pd.DataFrame], int] | None:
    if not all((root / name / "sweep.json").exists() for name in names):
        return None
    factor = read_settings(root / names[0]).budget // read_settings(root / "regnetx").budget
    return load_results(root / "regnetx"), [load_results(root / name) for name in names], factor


def study_fidelity(root: str | Path) -> dict | None:
    """The plan's :func:`rank_fidelity` of a study folder (``regnetx/`` and the :data:`STRICT_RUNS` folders in
    ``root``; the seed noise from the first :data:`PLANNED_NOISE_MODELS` networks, as planned), the budget factor
    read from their settings; None when the study has no such runs."""
    study = _study(Path(root), STRICT_RUNS)
    if study is None:
        return None
    proxy, (long, again), factor = study
    return rank_fidelity(proxy, long, again[again["index"] < PLANNED_NOISE_MODELS], factor)


def study_seed_mean_fidelity(root: str | Path) -> dict | None:
    """The amendment's :func:`seed_mean_fidelity` of a study folder (``regnetx/`` and the :data:`SEED_RUNS` folders
    in ``root``); None when the study has no such runs, or while a seed's runs lack some of the networks."""
    study = _study(Path(root), SEED_RUNS)
    if study is None:
        return None
    proxy, seeds, factor = study
    if any(set(s["index"]) != set(seeds[0]["index"]) for s in seeds[1:]):
        return None  # the amendment's figure is defined on every network; a partial one would read as final
    return seed_mean_fidelity(proxy, seeds, factor)


def _against_bar(r: dict) -> str:
    rho = r["spearman"]
    if rho["low"] >= FIDELITY_BAR:
        return f"The bar of {FIDELITY_BAR:g} is met with confidence. "
    if rho["high"] < FIDELITY_BAR:
        corrected = _corrected(r)
        after = ("" if corrected is None or corrected["ceiling"] >= 1 else
                 f"; about {corrected['high']:.2f} corrected for the reference's noise"
                 + (", above the bar" if corrected["high"] >= FIDELITY_BAR else ""))
        return (f"The bar of {FIDELITY_BAR:g} is missed with confidence (the interval ends at {rho['high']:.2f}"
                f"{after}). ")
    return f"The bar of {FIDELITY_BAR:g} lies inside the interval: neither met nor missed with confidence. "


def _noise_name(r: dict, whose: str = "its") -> str:
    return f"{whose} seed noise" if r["seeds"] == 1 else f"the noise of a {r['seeds']}-seed mean"


def fidelity_reading(r: dict) -> str:
    """What :func:`rank_fidelity`'s or :func:`seed_mean_fidelity`'s figures say about the proxy, in words (the
    plan's rule: informative only when the reference's spread is at least twice its noise), against the proxy's
    bar of :data:`FIDELITY_BAR`."""
    rho = r["spearman"]
    mean = f", the mean of {r['seeds']} training seeds" if r["seeds"] > 1 else ""
    said = (f"Fidelity against a reference that does not saturate ({r['models']} networks after {r['factor']}x the "
            f"budget, error = 1 - {r['reference']}{mean}): Spearman rho {rho['estimate']:.2f} (95 % BCa interval "
            f"{rho['low']:.2f} to {rho['high']:.2f}). ")
    if not r["informative"]:
        return said + (f"The long runs separate the networks by {r['reference_std']:.3f}, less than twice "
                       f"{_noise_name(r, 'their own')} ({r['reference_noise']:.3f}): by the plan's rule the figure is "
                       "uninformative.")
    low, high = _ratio_bounds(r)
    just = (f"; only at the noise's estimate: over its 95 % interval the spread is {low:.2f}x to {high:.2f}x it"
            if low < 2 else "")
    said += (f"The long runs separate the networks ({r['reference_std']:.3f}, at least twice "
             f"{_noise_name(r, 'their')}, {r['reference_noise']:.3f}{just}), so the figure is informative. "
             + _against_bar(r))
    if rho["low"] >= FIDELITY_BAR:
        return said + "The proxy keeps the order longer training gives."
    if rho["low"] > 0:
        return said + (f"The proxy's order is related to the long runs', but loosely (the interval reaches down to "
                       f"{rho['low']:.2f}): compare whole spaces with it, not single models.")
    return said + ("Its interval includes 0: the proxy's order of single models says little about theirs, "
                   "and a comparison of spaces under the proxy is a statement about the proxy; whether it holds "
                   "after longer training, this figure cannot vouch for.")


def _ratio_bounds(r: dict) -> tuple[float, float]:
    """The reference's spread over its noise at the ends of the noise's chi-square interval."""
    low, high = (n / np.sqrt(r["seeds"]) for n in r["run_noise_interval"])
    return r["reference_std"] / high, r["reference_std"] / low


def _times(r: dict) -> str:
    """The reference's spread over its noise, and that ratio over the noise's chi-square interval."""
    spread, noise = r["reference_std"], r["reference_noise"]
    if np.isnan(noise):
        return "noise unmeasured (no network trained twice)"
    if noise <= 0:
        return "noise 0"
    low, high = _ratio_bounds(r)
    return f"{spread / noise:.2f}x ({low:.2f}x to {high:.2f}x over the noise's interval)"


def _corrected(r: dict) -> dict | None:
    """Spearman's correction for the reference's noise: rho and the interval's upper end over
    :func:`correlation_ceiling` (None when the noise leaves nothing to correct against)."""
    ceiling = correlation_ceiling(r["reference_std"], r["reference_noise"])
    if not ceiling or np.isnan(ceiling):
        return None
    rho = r["spearman"]
    return dict(ceiling=ceiling, estimate=rho["estimate"] / ceiling, high=rho["high"] / ceiling)


def _corrected_clause(r: dict) -> str:
    corrected = _corrected(r)
    return ("" if corrected is None else
            f"; corrected for the reference's noise (rho / that ceiling) the estimate is about "
            f"{corrected['estimate']:.2f}, the interval's upper end {corrected['high']:.2f}")


def correlation_ceiling(spread: float, noise: float) -> float:
    """The highest correlation even a perfect proxy can reach with a reference whose spread across networks
    (``spread``) holds ``noise`` (Spearman's attenuation, 1904: the root of the share of the reference's variance
    that is not noise; 0 when the noise is all of it)."""
    return float(np.sqrt(max(0.0, 1 - (noise / spread) ** 2))) if spread > 0 else 0.0


def fidelity_report(r: dict) -> str:
    """:func:`rank_fidelity`'s or :func:`seed_mean_fidelity`'s figures in three lines, then
    :func:`fidelity_reading`."""
    rho, (low, high) = r["spearman"], r["run_noise_interval"]
    mean = f" (the mean of {r['seeds']} training seeds)" if r["seeds"] > 1 else ""
    over = f", over sqrt({r['seeds']})" if r["seeds"] > 1 else ""
    one_run = f"one run's seed std {r['run_noise']:.4f}, " if r["seeds"] > 1 else ""
    return "\n".join([
        f"rank fidelity: {r['models']} RegNetX networks, proxy error vs 1 - {r['reference']}{mean} after "
        f"{r['factor']}x the budget: Spearman rho {rho['estimate']:.3f}, 95 % BCa [{rho['low']:.3f}, "
        f"{rho['high']:.3f}], p = {rho['p']:.3g}",
        f"the reference's spread (std across networks) {r['reference_std']:.4f} against {_noise_name(r)} "
        f"{r['reference_noise']:.4f} ({one_run}95 % chi-square [{low:.4f}, "
        f"{high:.4f}], {r['noise_models']} networks x {r['noise_seeds']} seeds, "
        f"{r['noise_dof']} df{over}): {_times(r)}, the plan asks at least 2x",
        f"with that noise even a perfect proxy reaches a correlation of about "
        f"{correlation_ceiling(r['reference_std'], r['reference_noise']):.2f} at most{_corrected_clause(r)}; with "
        f"{r['models']} networks "
        f"the interval excludes 0 with 80 % power from a rho of about {r['detectable']['above_0']:.2f}, lies above the "
        f"bar of {FIDELITY_BAR:g} from about {r['detectable']['above_bar']:.2f} (Fisher z, Bonett-Wright variance); "
        f"the four-threshold error's spread at the long budget: {r['four_threshold_std']:.4f}",
        fidelity_reading(r)])
