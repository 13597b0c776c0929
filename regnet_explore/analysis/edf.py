"""Error EDFs of design spaces and their comparison (Radosavovic et al. 2019 "On Network Design Spaces for Visual
Recognition"; 2020 "Designing Network Design Spaces").

A design space is judged by the errors of models sampled from it. Everything here is plain numpy over 1-D arrays:
``errors`` (n,) of n models, optional non-negative ``weights`` (n,), ``complexity`` (n,) (FLOPs, parameters, ...,
positive) and ``values`` (n,) of one design parameter.

EDF convention: F(e) = Σ w_i 1[e_i <= e] / Σ w_i, the right-continuous EDF (as scipy.stats.ecdf). The papers write
1[e_i < e]; the two differ only at the observed errors, and ``<=`` makes F, evaluated at the observed errors, start
at the best model's share and end at 1.

Normalised comparison (2019, Sec. 3, "Normalized comparison"): the complexity range is cut into k bins and each of
the m_j models in bin j gets weight 1/(k m_j), so that every space's weighted complexity distribution is uniform
over the bins and spaces are compared at matched complexity. Here the bins are log-spaced (complexity spans orders
of magnitude) over the range that every compared space covers, and only bins holding models of every space count
(k is their number); models outside them get weight 0. A ``reference`` mass per bin replaces the uniform target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from regnet_explore.errors import RegNetExploreError

Curve = tuple[np.ndarray, np.ndarray]  # (grid, F)
Band = tuple[np.ndarray, np.ndarray, np.ndarray]  # (grid, lo, hi)
BandMethod = Literal["pointwise", "simultaneous", "dkw"]


class BestValue(NamedTuple):
    """A parameter value of the best models and its confidence interval."""

    value: float
    lo: float
    hi: float


def _sample(errors: ArrayLike, weights: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n,) errors and (n,) weights (ones when None) as floats, sorted by error, checked."""
    e = np.asarray(errors, dtype=float).ravel()
    if e.size == 0:
        raise RegNetExploreError("errors is empty: an EDF needs at least one model")
    if not np.all(np.isfinite(e)):
        raise RegNetExploreError("errors contain NaN or inf: drop the models whose training failed first")
    w = np.ones_like(e) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != e.shape:
        raise RegNetExploreError(f"weights has {w.size} entries but errors has {e.size}: give one weight per model")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise RegNetExploreError("weights must be finite, non-negative and not all zero")
    order = np.argsort(e, kind="stable")
    return e[order], w[order]


def _weighted(errors: ArrayLike, weights: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_sample` without the zero-weight models, which take no part in the EDF (nor in its resamples)."""
    e, w = _sample(errors, weights)
    keep = w > 0
    return e[keep], w[keep]


def _grid(grid: ArrayLike | None, e: np.ndarray) -> np.ndarray:
    return np.unique(e) if grid is None else np.asarray(grid, dtype=float).ravel()


def _at(e_sorted: np.ndarray, cum_w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Σ w_i 1[e_i <= g] at every grid point; ``cum_w[..., i]`` is the weight of the i+1 smallest errors."""
    padded = np.concatenate([np.zeros(cum_w.shape[:-1] + (1,)), cum_w], axis=-1)
    return padded[..., np.searchsorted(e_sorted, grid, side="right")]


def edf(errors: ArrayLike, weights: ArrayLike | None = None, grid: ArrayLike | None = None) -> Curve:
    """(Weighted) error EDF F(e) = Σ w_i 1[e_i <= e] / Σ w_i at every point of ``grid``.

    ``grid`` defaults to the sorted unique errors of the models with weight. Returns ``(grid, F)``, both
    (len(grid),).
    """
    e, w = _weighted(errors, weights)
    cum_w = np.cumsum(w)
    grid = _grid(grid, e)
    return grid, _at(e, cum_w, grid) / cum_w[-1]


def ks_distance(errors_a: ArrayLike, errors_b: ArrayLike, weights_a: ArrayLike | None = None,
                weights_b: ArrayLike | None = None) -> float:
    """Kolmogorov-Smirnov statistic D = sup_e |F_a(e) - F_b(e)| of two (weighted) error EDFs.

    Both EDFs are steps that jump only at observed errors, so the sup over all e is the max over those.
    """
    grid = np.union1d(np.asarray(errors_a, dtype=float), np.asarray(errors_b, dtype=float))
    _, fa = edf(errors_a, weights_a, grid)
    _, fb = edf(errors_b, weights_b, grid)
    return float(np.max(np.abs(fa - fb)))


class KSResult(NamedTuple):
    statistic: float  # D
    pvalue: float
    n_a: float  # (effective) sample sizes the p-value assumes
    n_b: float


def ks_test(errors_a: ArrayLike, errors_b: ArrayLike, weights_a: ArrayLike | None = None,
            weights_b: ArrayLike | None = None) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test of "both spaces have the same error distribution".

    Unweighted: ``scipy.stats.ks_2samp`` (exact p-value for small samples). Weighted (complexity-normalised) EDFs:
    D from :func:`ks_distance`, and the asymptotic Kolmogorov p-value at Kish's effective sample sizes
    n = (Σw)² / Σw², an approximation (weights from binning are not fixed design weights).
    """
    from scipy import stats

    if weights_a is None and weights_b is None:
        a, b = _sample(errors_a)[0], _sample(errors_b)[0]
        result = stats.ks_2samp(a, b)
        return KSResult(float(result.statistic), float(result.pvalue), float(len(a)), float(len(b)))
    d = ks_distance(errors_a, errors_b, weights_a, weights_b)
    n_a, n_b = (float(w.sum() ** 2 / (w**2).sum()) for w in (_weighted(errors_a, weights_a)[1],
                                                              _weighted(errors_b, weights_b)[1]))
    p = float(stats.kstwobign.sf(d * np.sqrt(n_a * n_b / (n_a + n_b))))
    return KSResult(d, min(1.0, p), n_a, n_b)


def edf_quantile(errors: ArrayLike, q: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    """Inverse EDF: for each q in [0, 1] the smallest observed error e with F(e) >= q (shape of ``q``)."""
    e, w = _weighted(errors, weights)
    cdf = np.cumsum(w) / w.sum()
    return e[np.minimum(np.searchsorted(cdf, np.asarray(q, dtype=float), side="left"), len(e) - 1)]


def summary(errors: ArrayLike, weights: ArrayLike | None = None, thresholds: Sequence[float] = ()) -> dict[str, float]:
    """Numbers the papers quote about an error distribution.

    Keys: ``n`` (models with weight > 0), ``n_eff`` (Kish's (Σw)²/Σw², = n unweighted), ``min``, ``mean``
    (weighted), ``q10``, ``q25``, ``median`` (errors at those EDF levels, :func:`edf_quantile`) and
    ``frac_le_{t:g}`` = F(t) for every threshold t.
    """
    e, w = _weighted(errors, weights)
    q10, q25, median = edf_quantile(e, [0.1, 0.25, 0.5], w)
    out = {"n": float(e.size), "n_eff": float(w.sum() ** 2 / np.sum(w**2)), "min": float(e[0]),
           "mean": float(np.average(e, weights=w)), "q10": float(q10), "q25": float(q25), "median": float(median)}
    if len(thresholds):
        _, frac = edf(e, w, thresholds)
        out.update({f"frac_le_{t:g}": float(f) for t, f in zip(thresholds, frac)})
    return out


def trend(values: ArrayLike, errors: ArrayLike, bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The error trend along one design parameter: the median error in ``bins`` bins of equal model count (the
    parameter's quantiles), at each bin's median value; ((k,), (k,)) with k <= bins (repeated values merge bins)."""
    v, e = np.asarray(values, dtype=float).ravel(), np.asarray(errors, dtype=float).ravel()
    if v.shape != e.shape or v.size == 0:
        raise RegNetExploreError(f"values ({v.size}) and errors ({e.size}) must be non-empty and of equal length")
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, max(len(edges) - 2, 0))
    groups = [which == b for b in range(max(len(edges) - 1, 1)) if (which == b).any()]
    return np.array([np.median(v[g]) for g in groups]), np.array([np.median(e[g]) for g in groups])


class Comparison(NamedTuple):
    """Two spaces' error distributions side by side (:func:`compare_spaces`)."""

    summaries: dict[str, dict[str, float]]  # space -> summary(errors, thresholds)
    ks: KSResult
    level: float
    verdict: str  # one sentence: which space is better, or that the data cannot tell them apart


def compare_spaces(errors: Mapping[str, ArrayLike], thresholds: Sequence[float] = (), level: float = 0.05,
                   weights: Mapping[str, ArrayLike] | None = None) -> Comparison:
    """Compare two spaces as the papers do: summaries, the KS test at ``level``, and a verdict.

    The verdict names the space whose EDF lies higher (more good models: lower median error) only when the KS test
    rejects equal distributions at ``level``; otherwise it says the spaces cannot be told apart with these models.
    """
    if len(errors) != 2:
        raise RegNetExploreError(f"compare_spaces compares two spaces, got {len(errors)}")
    (a, ea), (b, eb) = errors.items()
    wa, wb = (weights or {}).get(a), (weights or {}).get(b)
    summaries = {a: summary(ea, wa, thresholds), b: summary(eb, wb, thresholds)}
    ks = ks_test(ea, eb, wa, wb)
    ma, mb = summaries[a]["median"], summaries[b]["median"]
    if ks.pvalue < level:
        better, worse = (a, b) if ma < mb else (b, a)
        verdict = (f"{better} is better than {worse}: median error {min(ma, mb):.4f} vs {max(ma, mb):.4f}, "
                   f"KS D = {ks.statistic:.3f}, p = {ks.pvalue:.2g} < {level:g}")
    else:
        verdict = (f"{a} and {b} cannot be told apart with these models: median error {ma:.4f} vs {mb:.4f}, "
                   f"KS D = {ks.statistic:.3f}, p = {ks.pvalue:.2g} >= {level:g}")
    return Comparison(summaries, ks, level, verdict)


def _complexity(complexity: ArrayLike) -> np.ndarray:
    c = np.asarray(complexity, dtype=float).ravel()
    if c.size == 0 or not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise RegNetExploreError("complexity must be a non-empty array of positive finite numbers (FLOPs, params)")
    return c


def complexity_bins(complexities: Sequence[ArrayLike], bins: int = 10) -> np.ndarray:
    """(bins + 1,) log-spaced bin edges over the complexity range that every set covers.

    ``complexities``: one array per design space. The range runs from the largest minimum to the smallest maximum.
    """
    if bins < 1:
        raise RegNetExploreError(f"bins must be at least 1, got {bins}")
    cs = [_complexity(c) for c in complexities]
    lo, hi = max(c.min() for c in cs), min(c.max() for c in cs)
    if lo > hi:
        raise RegNetExploreError(f"the complexity ranges of the spaces do not overlap (largest minimum {lo:.4g} > "
                                 f"smallest maximum {hi:.4g}): compare spaces sampled in the same complexity regime")
    return np.geomspace(lo, hi, bins + 1)


def _bin_index(c: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of every value, bins closed on the left (the last on both sides); -1 outside the edges."""
    b = np.searchsorted(edges, c, side="right") - 1
    b[c == edges[-1]] = len(edges) - 2
    b[(c < edges[0]) | (c > edges[-1])] = -1
    return b


def _edges(complexities: Sequence[np.ndarray], bins: int | ArrayLike) -> np.ndarray:
    if np.ndim(bins) == 0:
        return complexity_bins(complexities, int(bins))
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) < 0):
        raise RegNetExploreError("bins must be a number of bins or increasing bin edges (at least two)")
    return edges


def complexity_weights(complexity: ArrayLike, bins: int | ArrayLike = 10,
                       reference: ArrayLike | None = None) -> np.ndarray:
    """Weights (n,), summing to 1, that make the weighted complexity histogram equal ``reference``.

    ``bins``: a number of log-spaced bins over the sample's range, or the edges (k + 1,). ``reference``: (k,)
    non-negative mass per bin, uniform over the occupied bins when None; a model in bin j gets weight
    reference_j / (Σ reference · m_j) with m_j models in that bin, and weight 0 outside the edges.
    """
    c = _complexity(complexity)
    edges = _edges([c], bins)
    b = _bin_index(c, edges)
    inside = b >= 0
    if not inside.any():
        raise RegNetExploreError(f"no model's complexity lies within the bins [{edges[0]:.4g}, {edges[-1]:.4g}]")
    counts = np.bincount(b[inside], minlength=len(edges) - 1)
    ref = (counts > 0).astype(float) if reference is None else np.asarray(reference, dtype=float).ravel()
    if ref.shape != counts.shape or np.any(ref < 0) or ref.sum() <= 0:
        raise RegNetExploreError(f"reference must be {counts.size} non-negative masses (one per bin), not all zero")
    empty = np.flatnonzero((ref > 0) & (counts == 0))
    if empty.size:
        j = empty[0]
        raise RegNetExploreError(f"complexity bin {j} [{edges[j]:.4g}, {edges[j + 1]:.4g}] holds no model but the "
                                 f"reference puts {ref[j] / ref.sum():.3g} of the weight there: use fewer bins or "
                                 "give that bin zero reference mass")
    per_model = np.divide(ref / ref.sum(), counts, out=np.zeros_like(ref), where=counts > 0)
    return np.where(inside, per_model[np.maximum(b, 0)], 0.0)


def matched_weights(complexities: Mapping[str, ArrayLike], bins: int | ArrayLike = 10) -> dict[str, np.ndarray]:
    """Per-space :func:`complexity_weights` with one uniform target over the bins that every space occupies.

    ``complexities``: name -> (n_name,) complexity. ``bins``: a number of log-spaced bins over the common range
    (:func:`complexity_bins`) or shared edges.
    """
    cs = {name: _complexity(c) for name, c in complexities.items()}
    edges = _edges(list(cs.values()), bins)
    shared = np.ones(len(edges) - 1, dtype=bool)
    for c in cs.values():
        b = _bin_index(c, edges)
        shared &= np.bincount(b[b >= 0], minlength=len(edges) - 1) > 0
    if not shared.any():
        raise RegNetExploreError(f"no complexity bin holds models of every space ({', '.join(cs)}): the spaces do "
                                 "not overlap in complexity; use fewer bins or spaces sampled in the same regime")
    return {name: complexity_weights(c, edges, shared.astype(float)) for name, c in cs.items()}


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise RegNetExploreError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}")


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) multiplicities of the n models in n_boot resamples of size n drawn with replacement."""
    idx = rng.integers(0, n, (n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def bootstrap_band(errors: ArrayLike, weights: ArrayLike | None = None, grid: ArrayLike | None = None,
                   level: float = 0.95, n_boot: int = 1000, seed: int = 0,
                   method: BandMethod = "pointwise") -> Band:
    """Confidence band ``(grid, lo, hi)`` around the (weighted) error EDF, each (len(grid),).

    ``method``:
      - ``"pointwise"``: percentile bootstrap over resampled (error, weight) pairs; covers F(e) at each single e
        with probability ``level``.
      - ``"simultaneous"``: F ± c, c the ``level`` quantile of the bootstrap sup_e |F* - F| plus half a step
        1/(2n); covers the whole curve at once.
      - ``"dkw"``: F ± sqrt(log(2 / (1 - level)) / (2n)) (Dvoretzky-Kiefer-Wolfowitz with Massart's constant),
        no resampling.
    n is Kish's effective sample size (Σw)²/Σw² (the number of models when unweighted).
    Bands are clipped to [0, 1]. ``grid`` defaults to the sorted unique errors.
    """
    _check_level(level)
    if method not in ("pointwise", "simultaneous", "dkw"):
        raise RegNetExploreError(f"unknown band method {method!r}: use 'pointwise', 'simultaneous' or 'dkw'")
    e, w = _weighted(errors, weights)
    grid = _grid(grid, e)
    cum_w = np.cumsum(w)
    f = _at(e, cum_w, grid) / cum_w[-1]
    n_eff = cum_w[-1] ** 2 / np.sum(w**2)
    if method == "dkw":
        eps = np.sqrt(np.log(2 / (1 - level)) / (2 * n_eff))
        return grid, np.clip(f - eps, 0, 1), np.clip(f + eps, 0, 1)
    boot_cum = np.cumsum(_resample_counts(np.random.default_rng(seed), e.size, n_boot) * w, axis=1)
    if method == "pointwise":
        lo, hi = np.quantile(_at(e, boot_cum, grid) / boot_cum[:, -1:], [(1 - level) / 2, (1 + level) / 2], axis=0)
        return grid, lo, hi
    # F* and F only jump at observed errors, so their sup distance over all e is the max over those
    jumps = np.unique(e)
    sup = np.abs(_at(e, boot_cum, jumps) / boot_cum[:, -1:] - _at(e, cum_w, jumps) / cum_w[-1]).max(axis=1)
    # The bootstrap distances live on the 1/n lattice, but the distance of the steps to a continuous true CDF
    # also counts the left limits at each jump: half a step more brings the coverage at n = 200 from 0.939 to
    # 0.952 (2000 simulated Uniform samples).
    c = np.quantile(sup, level) + 0.5 / n_eff
    return grid, np.clip(f - c, 0, 1), np.clip(f + c, 0, 1)


def bootstrap_best(values: ArrayLike, errors: ArrayLike, sample: float = 0.25, top: int = 1, n_boot: int = 10_000,
                   seed: int = 0, level: float = 0.95) -> BestValue:
    """The 2020 paper's empirical bootstrap of the parameter value of the best models.

    Each of ``n_boot`` rounds draws round(``sample`` · n) (value, error) pairs with replacement and keeps the value
    of the lowest-error pair (the mean value of the ``top`` lowest when top > 1). The paper uses 25 % and 10^4
    rounds. Returns the median of the kept values and their central ``level`` interval.
    """
    _check_level(level)
    v, e = np.asarray(values, dtype=float).ravel(), np.asarray(errors, dtype=float).ravel()
    if v.shape != e.shape or v.size == 0:
        raise RegNetExploreError(f"values ({v.size}) and errors ({e.size}) must be non-empty and of equal length")
    if top < 1 or not 0 < sample <= 1:
        raise RegNetExploreError(f"need top >= 1 and 0 < sample <= 1, got top={top}, sample={sample}")
    m = max(top, round(sample * v.size))
    idx = np.random.default_rng(seed).integers(0, v.size, (n_boot, m))
    best = np.take_along_axis(idx, np.argpartition(e[idx], top - 1, axis=1)[:, :top], axis=1)
    lo, mid, hi = np.quantile(v[best].mean(axis=1), [(1 - level) / 2, 0.5, (1 + level) / 2])
    return BestValue(float(mid), float(lo), float(hi))
