"""The rank fidelity's figure draws each network where its two errors put it, the reference's noise as its bars."""

from __future__ import annotations

import numpy as np
import pytest

from regnet_explore.errors import RegNetExploreError
from regnet_explore.viz.fidelity import plot_fidelity


def _result(seeds, noise):
    return dict(seeds=seeds, models=4, factor=4, reference="AP_car@0.5", proxy_errors=[0.40, 0.45, 0.50, 0.55],
                reference_errors=[0.12, 0.10, 0.18, 0.20], reference_noise=noise,
                spearman=dict(estimate=0.8, low=-0.2, high=1.0))


def test_one_panel_per_result_with_each_networks_errors_and_the_noise_as_bars():
    fig = plot_fidelity([_result(1, 0.037), _result(3, 0.021)])
    assert len(fig.axes) == 2
    for ax, noise in zip(fig.axes, (0.037, 0.021)):
        points = ax.get_lines()[0].get_xydata()
        assert points.tolist() == [[0.40, 0.12], [0.45, 0.10], [0.50, 0.18], [0.55, 0.20]]
        bars = ax.collections[0].get_segments()  # one vertical segment a network, +-noise around its error
        assert [s[1, 1] - s[0, 1] for s in bars] == pytest.approx([2 * noise] * 4)
        assert np.allclose([s[:, 0] for s in bars], [[x, x] for x in (0.40, 0.45, 0.50, 0.55)])
        assert "4 networks: rho 0.80 [-0.20, 1.00]" in ax.get_title()
    assert fig.axes[0].get_title().startswith("one run") and fig.axes[1].get_title().startswith("the mean of 3 seeds")
    assert "bars: ±1 noise of the mean of 3 seeds (0.021)" in fig.axes[1].get_title()


def test_no_result_is_refused():
    with pytest.raises(RegNetExploreError, match="at least one fidelity result"):
        plot_fidelity([])
