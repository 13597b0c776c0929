"""Design-space figures of Radosavovic et al. (2019, 2020): error EDFs with confidence bands, error vs parameter.

Plain functions over :mod:`regnet_explore.analysis.edf`. ``curves`` map a space's name to its errors (n,), or to
``(errors, weights)`` for a normalised EDF (weights from :func:`~regnet_explore.analysis.edf.matched_weights`);
``bands`` map some of those names to ``(grid, lo, hi)`` from :func:`~regnet_explore.analysis.edf.bootstrap_band`.
Legends read ``name [n] min | mean`` as in the papers. The matplotlib functions return a Figure (PNG via
:func:`regnet_explore.viz.common.save_png`); their ``plotly_*`` twins return an interactive ``go.Figure``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from matplotlib.axes import Axes
from matplotlib.ticker import NullFormatter, ScalarFormatter
from numpy.typing import ArrayLike
from plotly.colors import hex_to_rgb
from plotly.colors import qualitative as palettes

from regnet_explore.analysis.edf import Band, BestValue, edf, summary, trend
from regnet_explore.errors import RegNetExploreError
from regnet_explore.figures import Figure as MplFigure

Sample = ArrayLike | tuple[ArrayLike, ArrayLike | None]  # errors, or (errors, weights)
TEMPLATE = "plotly_white"
EDF_YLABEL = "cumulative prob. F(e)"


def _split(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """(errors, weights or None) of a curve: a tuple is (errors, weights), anything else the errors alone."""
    if isinstance(sample, tuple):
        errors, weights = sample
        return np.asarray(errors, dtype=float), None if weights is None else np.asarray(weights, dtype=float)
    return np.asarray(sample, dtype=float), None


def edf_label(name: str, errors: ArrayLike, weights: ArrayLike | None = None) -> str:
    """``name [n] min | mean`` (n: models with weight > 0; mean weighted), the papers' legend."""
    s = summary(errors, weights)
    return f"{name} [{int(s['n'])}] {s['min']:#.3g} | {s['mean']:#.3g}"


def _steps(errors: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """EDF vertices for a post-step line that rises from 0 at the smallest error."""
    grid, f = edf(errors, weights)
    return np.concatenate([grid[:1], grid]), np.concatenate([[0.0], f])


def _check_bands(curves: Mapping[str, Sample], bands: Mapping[str, Band] | None) -> Mapping[str, Band]:
    unknown = set(bands or {}) - set(curves)
    if unknown:
        raise RegNetExploreError(f"bands for {sorted(unknown)} have no curve: bands must use names of curves")
    return bands or {}


def plot_edfs(curves: Mapping[str, Sample], bands: Mapping[str, Band] | None = None, ax: Axes | None = None,
              title: str | None = None, xlabel: str = "error") -> MplFigure:
    """One EDF step line per space, its band shaded in the same colour; draws into ``ax`` when given."""
    bands = _check_bands(curves, bands)
    if ax is None:
        ax = MplFigure(figsize=(5.5, 4), layout="constrained").subplots()
    for i, (name, sample) in enumerate(curves.items()):
        errors, weights = _split(sample)
        if name in bands:
            grid, lo, hi = bands[name]
            ax.fill_between(grid, lo, hi, step="post", color=f"C{i}", alpha=0.2, lw=0)
        ax.step(*_steps(errors, weights), where="post", color=f"C{i}", label=edf_label(name, errors, weights))
    ax.set(xlabel=xlabel, ylabel=EDF_YLABEL, ylim=(0, 1.02))
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def _rgba(hex_color: str, alpha: float) -> str:
    return "rgba({}, {}, {}, {})".format(*hex_to_rgb(hex_color), alpha)


def plotly_edfs(curves: Mapping[str, Sample], bands: Mapping[str, Band] | None = None, title: str | None = None,
                xlabel: str = "error") -> go.Figure:
    """Plotly version of :func:`plot_edfs`; hovering a curve shows the error and the fraction of models at or below.

    Per space: with a band, its upper and lower edges (the lower one filled up to the upper), then the curve.
    """
    bands = _check_bands(curves, bands)
    fig = go.Figure()
    for i, (name, sample) in enumerate(curves.items()):
        errors, weights = _split(sample)
        color = palettes.D3[i % len(palettes.D3)]  # matplotlib's C0, C1, ...: one colour per space in both
        if name in bands:
            grid, lo, hi = bands[name]
            edge = dict(x=grid, mode="lines", line=dict(width=0, shape="hv"), legendgroup=name, showlegend=False,
                        hoverinfo="skip")
            fig.add_trace(go.Scatter(y=hi, **edge))
            fig.add_trace(go.Scatter(y=lo, fill="tonexty", fillcolor=_rgba(color, 0.2), **edge))
        x, y = _steps(errors, weights)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, shape="hv"), legendgroup=name,
                                 name=edf_label(name, errors, weights),
                                 hovertemplate=f"{name}<br>{xlabel} %{{x:.4g}}<br>fraction %{{y:.3f}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=xlabel, yaxis=dict(title=EDF_YLABEL, range=[0, 1.02]),
                      legend=dict(x=0.99, y=0.01, xanchor="right", yanchor="bottom"), height=450)
    return fig


def _best_label(name: str, best: BestValue) -> str:
    value, lo, hi = best
    return f"best {name}: {value:.3g} [{lo:.3g}, {hi:.3g}]"


def plot_param_vs_error(values: ArrayLike, errors: ArrayLike, name: str, best: BestValue | None = None,
                        ax: Axes | None = None, ylabel: str = "error", trend_bins: int = 0,
                        log: bool = False) -> MplFigure:
    """Error of every model against its parameter ``name``; ``best`` (from
    :func:`~regnet_explore.analysis.edf.bootstrap_best`) draws the best models' value and its interval shaded;
    ``trend_bins`` > 0 draws the binned median error (:func:`~regnet_explore.analysis.edf.trend`); ``log``: a log
    x axis (widths, slopes)."""
    if ax is None:
        ax = MplFigure(figsize=(5.5, 4), layout="constrained").subplots()
    ax.scatter(values, errors, s=8, alpha=0.5, lw=0)
    if trend_bins:
        tx, ty = trend(values, errors, trend_bins)
        ax.plot(tx, ty, "-o", color="k", lw=1.2, ms=3, label="median error (binned)")
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    if best is not None:
        value, lo, hi = best
        ax.axvspan(lo, hi, color="C3", alpha=0.15, lw=0)
        ax.axvline(value, color="C3", lw=1, label=_best_label(name, best))
    if best is not None or trend_bins:
        ax.legend(loc="upper right", fontsize=9)
    ax.set(xlabel=name, ylabel=ylabel)
    return ax.figure


def plotly_param_vs_error(values: ArrayLike, errors: ArrayLike, name: str, best: BestValue | None = None,
                          ylabel: str = "error") -> go.Figure:
    """Plotly version of :func:`plot_param_vs_error`: one scatter trace, the interval and value as shapes."""
    fig = go.Figure(go.Scatter(x=np.asarray(values), y=np.asarray(errors), mode="markers", name="models",
                               marker=dict(size=5, opacity=0.5),
                               hovertemplate=f"{name} %{{x:.4g}}<br>{ylabel} %{{y:.4g}}<extra></extra>"))
    if best is not None:
        value, lo, hi = best
        fig.add_vrect(x0=lo, x1=hi, fillcolor="#d62728", opacity=0.15, line_width=0)
        fig.add_vline(x=value, line=dict(color="#d62728", width=1), annotation_text=_best_label(name, best))
    fig.update_layout(template=TEMPLATE, xaxis_title=name, yaxis_title=ylabel, height=450)
    return fig
