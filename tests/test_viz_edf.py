"""EDF figures build with one line per space, shaded bands, ``[n] min | mean`` labels, and save as PNG."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from regnet_explore.analysis.edf import BestValue, bootstrap_band, bootstrap_best, matched_weights
from regnet_explore.errors import RegNetExploreError
from regnet_explore.viz.common import save_png
from regnet_explore.viz.edf import (
    edf_label,
    plot_edfs,
    plot_param_vs_error,
    plotly_edfs,
    plotly_param_vs_error,
)

matplotlib.use("Agg")


@pytest.fixture
def spaces() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"AnyNetX_A": rng.normal(40, 2, 100), "AnyNetX_E": rng.normal(38, 1.5, 60)}


def test_label_gives_n_min_and_mean():
    assert edf_label("X", [3.0, 1.0, 2.0]) == "X [3] 1.00 | 2.00"
    assert edf_label("X", [3.0, 1.0, 2.0], [1, 0, 3]) == "X [2] 2.00 | 2.25"  # zero weight: not counted


def test_plot_edfs(spaces, tmp_path):
    weights = matched_weights({"AnyNetX_A": np.arange(1, 101), "AnyNetX_E": np.arange(1, 61)}, bins=4)
    curves = {"AnyNetX_A": spaces["AnyNetX_A"], "AnyNetX_E": (spaces["AnyNetX_E"], weights["AnyNetX_E"])}
    bands = {"AnyNetX_A": bootstrap_band(spaces["AnyNetX_A"], n_boot=100)}
    fig = plot_edfs(curves, bands, title="EDFs")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"AnyNetX_A [100] {spaces['AnyNetX_A'].min():#.3g} | {spaces['AnyNetX_A'].mean():#.3g}"
    assert labels[1].startswith("AnyNetX_E [60] ")
    x, y = ax.get_lines()[0].get_data()
    assert y[0] == 0 and y[-1] == 1 and x[0] == spaces["AnyNetX_A"].min()
    path = tmp_path / "edfs.png"
    save_png(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["edfs.png"]  # written atomically: no temporary file left
    with pytest.raises(RegNetExploreError, match="does not exist"):
        save_png(fig, tmp_path / "missing" / "x.png")


def test_plot_edfs_draws_into_given_axes(spaces):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert plot_edfs(spaces, ax=ax) is ax.figure
    with pytest.raises(RegNetExploreError, match="no curve"):
        plot_edfs(spaces, {"other": bootstrap_band(spaces["AnyNetX_A"], method="dkw")})


def test_plotly_edfs(spaces):
    fig = plotly_edfs(spaces, {"AnyNetX_E": bootstrap_band(spaces["AnyNetX_E"], method="dkw")})
    assert len(fig.data) == 2 + 2  # two curves, one band of two edges
    upper, lower, curve = fig.data[1:]
    assert lower.fill == "tonexty" and not upper.showlegend
    assert curve.name.startswith("AnyNetX_E [60] ") and "fraction" in curve.hovertemplate
    assert fig.data[0].name.startswith("AnyNetX_A [100] ")
    assert curve.y[0] == 0 and curve.y[-1] == 1


def test_param_vs_error(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.integers(6, 30, 200).astype(float)
    errors = (depth - 18) ** 2 / 20 + rng.normal(0, 1, 200)
    best = bootstrap_best(depth, errors, n_boot=1000)
    fig = plot_param_vs_error(depth, errors, "depth", best)
    ax = fig.axes[0]
    assert len(ax.collections) == 1 and len(ax.patches) == 1
    assert ax.get_legend().get_texts()[0].get_text().startswith("best depth: ")
    save_png(fig, tmp_path / "depth.png")
    fig = plotly_param_vs_error(depth, errors, "depth", BestValue(18.0, 16.0, 20.0))
    assert len(fig.data) == 1 and len(fig.layout.shapes) == 2
    assert fig.layout.shapes[0].x0 == 16.0 and fig.layout.shapes[0].x1 == 20.0
    assert len(plotly_param_vs_error(depth, errors, "depth").layout.shapes) == 0
