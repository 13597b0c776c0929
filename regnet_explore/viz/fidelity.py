"""The rank fidelity's figure (:func:`analysis.fidelity.rank_fidelity`'s and ``seed_mean_fidelity``'s results):
each network's proxy error against its error after longer training, the order Spearman's rho measures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from regnet_explore.errors import RegNetExploreError
from regnet_explore.figures import Figure


def plot_fidelity(figures: Sequence[Mapping]) -> Figure:
    """One panel per fidelity result, sharing axes: each network's proxy error (x) against its reference error (y),
    a vertical bar of ±1 the reference's noise (one run's seed std, or a mean's), Spearman's rho with its BCa
    interval in the title."""
    if not figures:
        raise RegNetExploreError("plot_fidelity needs at least one fidelity result")
    fig = Figure(figsize=(4.8 * len(figures), 4.0), layout="constrained")
    for ax, r in zip(fig.subplots(1, len(figures), sharex=True, sharey=True, squeeze=False)[0], figures):
        rho = r["spearman"]
        runs = "one run" if r["seeds"] == 1 else f"the mean of {r['seeds']} seeds"
        ax.errorbar(r["proxy_errors"], r["reference_errors"], yerr=r["reference_noise"], fmt="o", ms=4,
                    color="C0", ecolor="0.7", capsize=2)
        ax.set(xlabel="proxy error", ylabel=f"1 - {r['reference']} after {r['factor']}x the budget")
        ax.set_title(f"{runs}, {r['models']} networks: rho {rho['estimate']:.2f} [{rho['low']:.2f}, "
                     f"{rho['high']:.2f}]\nbars: ±1 noise of {runs} ({r['reference_noise']:.3f})", fontsize=10)
    return fig
