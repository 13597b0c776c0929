"""Figures of a design-space comparison (:func:`analysis.comparison.compare`'s result): the shifts with their
intervals against the equivalence margin, the power curve, and where each space's models sit in complexity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from regnet_explore.analysis import stats
from regnet_explore.figures import Figure

SPACE_COLORS = ("C0", "C1")  # the same colour per space as viz.edf's EDFs (plotly's D3 = matplotlib's tab10)


def plot_shifts(result: Mapping) -> Figure:
    """Each estimate of ``b - a`` with its interval (the adjusted shift first: the primary result), the
    equivalence margin shaded and 0 marked."""
    a, b = result["names"]
    adj, eq = result["primary"]["adjusted_shift"], result["primary"]["equivalence"]
    rows = [(f"adjusted for complexity ({adj['level']:.0%}, primary)", adj),
            (f"adjusted, {1 - 2 * eq['alpha']:.0%} (equivalence test)", {"estimate": adj["estimate"], **eq}),
            ("Hodges-Lehmann shift", result["secondary"]["hodges_lehmann"]),
            ("difference of means (BCa)", result["secondary"]["mean_difference"])]
    fig = Figure(figsize=(8, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.axvspan(-eq["margin"], eq["margin"], color="0.9", label=f"equivalence margin +-{eq['margin']:g}")
    ax.axvline(0, color="0.4", lw=0.8)
    for y, (label, e) in enumerate(reversed(rows)):
        ax.errorbar(e["estimate"], y, xerr=[[e["estimate"] - e["low"]], [e["high"] - e["estimate"]]], fmt="o",
                    color="k" if "primary" in label else "0.45", capsize=4)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    ax.set_xlabel(f"error of {b} - error of {a} (positive: {b} worse)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_power(population: np.ndarray, sizes: Sequence[int], noise: float, runs: int, detectable: Mapping,
               tests: Sequence[str] = ("mannwhitney", "ks"), n_sim: int = 1000, seed: int = 0) -> Figure:
    """Simulated power against the shift, for each test at each number of models per space; the adjusted
    test's detectable shift (80 %) marked at the tables' size."""
    shifts = np.linspace(0, 0.08, 17)
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for n, style in zip(sizes, ("-", "--", ":")):
        for test, color in zip(tests, ("C2", "C3")):
            power = [stats.simulated_power(population, n, n, s, test, noise, runs, n_sim=n_sim, seed=seed)
                     for s in shifts]
            ax.plot(shifts, power, style, color=color, label=f"{test}, {n} a space")
    ax.axhline(0.8, color="0.5", lw=0.8)
    ax.axvline(detectable["adjusted"], color="k", lw=0.8, ls="-.",
               label=f"adjusted: 80 % at {detectable['adjusted']:.3f}")
    ax.set(xlabel="true shift in error", ylabel="power (alpha 0.05)", ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_complexity(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """Backbone FLOPs against activations per model of each space: in one FLOPs window the spaces may still differ
    in activations, which is why the comparison adjusts for both."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for (name, t), color in zip(tables.items(), SPACE_COLORS):
        ax.scatter(t["flops"] / 1e9, t["acts"] / 1e6, s=10, alpha=0.6, color=color, label=f"{name} [{len(t)}]")
    ax.set(xlabel="backbone GFLOPs", ylabel="activations (millions)", title="complexity of the sampled models")
    ax.legend(fontsize=8)
    return fig


__all__ = ["SPACE_COLORS", "plot_complexity", "plot_power", "plot_shifts"]
