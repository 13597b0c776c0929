"""Rank fidelity of a proxy: do networks keep the proxy's order when trained longer?

The reference is each network's error after a longer run, scored at one strict matching threshold (``AP_car@0.5``,
1 - car AP at 0.5 m) where the four-threshold AP of long runs saturates; its seed noise comes from a few networks
trained again with another training seed. The figure counts as informative only when the reference separates the
networks by at least twice that noise (docs/sweeps.md, the extension's plan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from regnet_explore.analysis.stats import spearman_interval
from regnet_explore.analysis.sweep import load_results, read_settings
from regnet_explore.errors import RegNetExploreError

STRICT = "AP_car@0.5"
# a study's sweep folders of the first RegNetX networks at 4x the budget, and of a few of them with another seed
# (benchmarks/rank_fidelity.py)
STRICT_RUNS = ("fidelity-4x-strict", "fidelity-4x-strict-seed-1")
FIDELITY_BAR = 0.6  # the proxy's bar for Spearman rho with longer training (docs/sweeps.md, "Its quality")


def _reference(table: pd.DataFrame, column: str, name: str) -> pd.Series:
    if column not in table:
        raise RegNetExploreError(f"the {name} runs have no {column!r} column (rows scored before per-threshold APs)")
    return (1 - table.set_index("index")[column]).rename(name)


def seed_noise(reference: pd.Series, again: pd.Series) -> float:
    """One run's standard deviation of the reference error, from the networks trained with two seeds: the root of
    the mean of their per-network sample variances (NaN when no network was trained twice)."""
    pairs = pd.concat([reference, again], axis=1, join="inner").to_numpy()
    return float(np.sqrt(np.mean(np.var(pairs, axis=1, ddof=1)))) if len(pairs) else float("nan")


def rank_fidelity(proxy: pd.DataFrame, long: pd.DataFrame, again: pd.DataFrame, factor: int,
                  reference: str = STRICT) -> dict:
    """Spearman's rho between the proxy's errors (``proxy``: the study's table) and the long runs' reference errors
    (``long``: the same networks after ``factor`` x the budget), with a BCa interval; the reference's spread
    across networks and its seed noise (``again``: some of the long runs with another training seed).

    Tables are sweep tables (:func:`sweep.load_results`), matched on the sampling index."""
    ref = _reference(long, reference, "reference")
    pair = ref.to_frame().join(proxy.set_index("index")["error"], how="inner")
    rho = spearman_interval(pair["error"], pair["reference"], seed=0)
    seed_1 = _reference(again, reference, "seed_1") if len(again) else pd.Series(name="seed_1", dtype=float)
    noise = seed_noise(ref, seed_1)
    noise_models = len(ref.index.intersection(seed_1.index))
    spread = float(pair["reference"].std(ddof=1))
    four = (1 - long.set_index("index")["AP_car"]).loc[pair.index]
    return dict(models=len(pair), reference=reference, factor=factor, spearman=rho.to_dict(),
                reference_std=spread, reference_noise=noise, noise_models=noise_models,
                informative=bool(noise_models >= 2 and spread >= 2 * noise),
                four_threshold_std=float(four.std(ddof=1)), proxy_errors=pair["error"].round(4).tolist(),
                reference_errors=pair["reference"].round(4).tolist(),
                cpu=sorted(set(long["cpu"])) if "cpu" in long else [])


def study_fidelity(root: str | Path) -> dict | None:
    """:func:`rank_fidelity` of a study folder (``regnetx/`` and the :data:`STRICT_RUNS` folders in ``root``), the
    budget factor read from their settings; None when the study has no such runs."""
    root = Path(root)
    if not all((root / name / "sweep.json").exists() for name in STRICT_RUNS):
        return None
    long, again = (load_results(root / name) for name in STRICT_RUNS)
    factor = read_settings(root / STRICT_RUNS[0]).budget // read_settings(root / "regnetx").budget
    return rank_fidelity(load_results(root / "regnetx"), long, again, factor)


def _against_bar(rho: dict) -> str:
    if rho["low"] >= FIDELITY_BAR:
        return f"The bar of {FIDELITY_BAR:g} is met with confidence. "
    if rho["high"] < FIDELITY_BAR:
        return f"The bar of {FIDELITY_BAR:g} is missed with confidence (the interval ends at {rho['high']:.2f}). "
    return f"The bar of {FIDELITY_BAR:g} lies inside the interval: neither met nor missed with confidence. "


def fidelity_reading(r: dict) -> str:
    """What ``rank_fidelity``'s figures say about the proxy, in words (the plan's rule: informative only when the
    reference's spread is at least twice its seed noise), against the proxy's bar of :data:`FIDELITY_BAR`."""
    rho = r["spearman"]
    said = (f"Fidelity against a reference that does not saturate ({r['models']} networks after {r['factor']}x the "
            f"budget, error = 1 - {r['reference']}): Spearman rho {rho['estimate']:.2f} (95 % BCa interval "
            f"{rho['low']:.2f} to {rho['high']:.2f}). ")
    if not r["informative"]:
        return said + (f"The long runs separate the networks by {r['reference_std']:.3f}, less than twice their own "
                       f"seed noise ({r['reference_noise']:.3f}): by the plan's rule the figure is uninformative.")
    said += (f"The long runs separate the networks ({r['reference_std']:.3f}, at least twice their seed noise "
             f"{r['reference_noise']:.3f}), so the figure is informative. " + _against_bar(rho))
    if rho["low"] >= FIDELITY_BAR:
        return said + "The proxy keeps the order longer training gives."
    if rho["low"] > 0:
        return said + (f"The proxy's order is related to the long runs', but loosely (the interval reaches down to "
                       f"{rho['low']:.2f}): compare whole spaces with it, not single models.")
    return said + ("Its interval admits no relation: the proxy's order of single models says little about theirs, "
                   "and a comparison of spaces under the proxy is a statement about the proxy; whether it holds "
                   "after longer training, this figure cannot vouch for.")


def _times(spread: float, noise: float) -> str:
    if np.isnan(noise):
        return "noise unmeasured (no network trained twice)"
    return f"{spread / noise:.1f}x" if noise > 0 else "noise 0"


def fidelity_report(r: dict) -> str:
    """``rank_fidelity``'s figures in two lines, then :func:`fidelity_reading`."""
    rho = r["spearman"]
    return "\n".join([
        f"rank fidelity: {r['models']} RegNetX networks, proxy error vs 1 - {r['reference']} after {r['factor']}x "
        f"the budget: Spearman rho {rho['estimate']:.3f}, 95 % BCa [{rho['low']:.3f}, {rho['high']:.3f}], "
        f"p = {rho['p']:.3g}",
        f"the reference's spread (std across networks) {r['reference_std']:.4f} against its seed noise "
        f"{r['reference_noise']:.4f} ({r['noise_models']} networks x 2 seeds): "
        f"{_times(r['reference_std'], r['reference_noise'])}, the plan asks at least 2x; the four-threshold error's "
        f"spread at the long budget: {r['four_threshold_std']:.4f}",
        fidelity_reading(r)])
