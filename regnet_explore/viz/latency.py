"""Figures of latency as a design-space axis (:mod:`analysis.latency_analysis`): latency against each complexity
measure, and error against latency with the Pareto front and a budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regnet_explore.analysis.latency_analysis import correlations, pareto_front
from regnet_explore.figures import Figure
from regnet_explore.viz.comparison import SPACE_COLORS

LABELS = {"backbone_flops": "backbone GFLOPs", "backbone_acts": "backbone activations (M)",
          "backbone_params": "backbone parameters (M)"}
SCALE = {"backbone_flops": 1e9, "backbone_acts": 1e6, "backbone_params": 1e6}


def _spaces(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["space"]))


def plot_latency_vs_complexity(table: pd.DataFrame,
                               measures: Sequence[str] = ("backbone_flops", "backbone_acts")) -> Figure:
    """Frame latency against each complexity measure (log-log), one colour per space, Spearman and R² in the
    title. ``table``: one device kind and precision."""
    stats = correlations(table, measures).set_index("measure")
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, len(measures), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), measures):
        for space, color in zip(_spaces(table), SPACE_COLORS):
            part = table[table["space"] == space]
            ax.scatter(part[m] / SCALE[m], part["total_ms"], s=10, alpha=0.6, color=color, label=space)
        ax.set(xscale="log", yscale="log", xlabel=LABELS[m],
               title=f"Spearman {stats.loc[m, 'spearman']:+.2f}, R² (log-log) {stats.loc[m, 'r2_loglog']:.2f}")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("ms a frame")
    return fig


def plot_error_vs_latency(table: pd.DataFrame, budget_ms: float | None = None, title: str = "") -> Figure:
    """Error against frame latency, one colour per space; the Pareto front as a step line; with a budget, the
    models over it greyed and the best under it circled."""
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    under = table["total_ms"] <= budget_ms if budget_ms is not None else pd.Series(True, index=table.index)
    for space, color in zip(_spaces(table), SPACE_COLORS):
        part = table["space"] == space
        ax.scatter(table.loc[part & under, "total_ms"], table.loc[part & under, "error"], s=14, color=color,
                   label=f"{space} [{int((part & under).sum())} under budget]" if budget_ms else space)
        ax.scatter(table.loc[part & ~under, "total_ms"], table.loc[part & ~under, "error"], s=10, color="0.8")
    front = table.iloc[pareto_front(table["total_ms"], table["error"])]
    ax.step(front["total_ms"], front["error"], where="post", color="k", lw=1, label="Pareto front")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="C3", lw=1, ls="--", label=f"budget {budget_ms:.0f} ms")
        if under.any():
            best = table[under].loc[table[under]["error"].idxmin()]
            ax.scatter([best["total_ms"]], [best["error"]], s=160, facecolors="none", edgecolors="C3", lw=2,
                       label=f"best under budget: {best['space']}-{best['index']}")
    ax.set(xlabel="ms a frame", ylabel="error (1 - car AP, proxy)", title=title)
    ax.legend(fontsize=8, loc="best")
    return fig


__all__ = ["plot_error_vs_latency", "plot_latency_vs_complexity"]
