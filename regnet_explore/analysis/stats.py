"""The statistics of a design-space comparison: how far apart two spaces' errors lie, with intervals, adjusted for
complexity, tested for equivalence, and how large a difference the comparison could have seen.

Conventions: ``a`` and ``b`` are the two spaces' errors (lower is better); every shift is ``b - a`` (positive: space
``b`` is worse). Tests come from scipy.stats and statsmodels; what they lack is written here and checked against them
in the tests:

- the Hodges-Lehmann shift's interval: the shifts the Mann-Whitney test (normal approximation, continuity
  corrected) does not reject, d_(k) .. d_(nm+1-k) of the n x m sorted pairwise differences (Hollander & Wolfe);
- the complexity-adjusted shift: least squares of error on [1, is_b, log FLOPs, log activations, factors], the
  space coefficient with a heteroscedasticity-robust (HC3) interval (statsmodels) and a permutation p-value of the
  space labels (scipy's ``permutation_test``, the coefficient by the Frisch-Waugh-Lovell projection);
- equivalence by two one-sided tests of a coefficient (Schuirmann), which statsmodels offers for plain means only;
- power by simulation, and the partial Spearman correlation (ranks residualised on the covariates' ranks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, stats

from regnet_explore.errors import RegNetExploreError

COMPLEXITY = ("flops", "acts")  # the covariates of the adjusted comparison, taken in logs
TESTS = ("mannwhitney", "ks", "t")


@dataclass(frozen=True)
class Estimate:
    """An estimate with its two-sided interval at ``level`` and a p-value of "no difference" (NaN: none)."""

    estimate: float
    low: float
    high: float
    level: float
    p: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def _errors(values: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        raise RegNetExploreError(f"{name}: need at least 2 finite errors, got {x.size}")
    return x


def hodges_lehmann(a: ArrayLike, b: ArrayLike, level: float = 0.95) -> Estimate:
    """The Hodges-Lehmann shift ``b - a`` (the median of the pairwise differences), its distribution-free interval
    (module docstring) and the two-sided Mann-Whitney p-value (scipy, asymptotic with tie correction)."""
    a, b = _errors(a, "a"), _errors(b, "b")
    diffs = np.sort(np.subtract.outer(b, a).ravel())
    total = len(diffs)
    # a shift between the j-th and (j+1)-th smallest differences leaves U = total - j pairs with b - shift > a; the
    # test (normal approximation with continuity correction, as scipy's) keeps it when |U - total/2| - 1/2 <= z sd
    z = stats.norm.ppf(0.5 + level / 2)
    sd = np.sqrt(len(a) * len(b) * (len(a) + len(b) + 1) / 12)
    j = max(1, math.ceil(total / 2 - 0.5 - z * sd))
    p = stats.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic").pvalue
    return Estimate(float(np.median(diffs)), float(diffs[j - 1]), float(diffs[total - j]), level, float(p))


def mean_difference(a: ArrayLike, b: ArrayLike, level: float = 0.95, n_boot: int = 10_000,
                    seed: int = 0) -> Estimate:
    """The difference of mean errors ``b - a`` with a BCa bootstrap interval (scipy.stats.bootstrap) and Welch's
    t-test p-value."""
    a, b = _errors(a, "a"), _errors(b, "b")
    boot = stats.bootstrap((b, a), lambda x, y, axis: np.mean(x, axis) - np.mean(y, axis), vectorized=True,
                           confidence_level=level, n_resamples=n_boot, method="BCa", random_state=seed)
    p = stats.ttest_ind(b, a, equal_var=False).pvalue
    ci = boot.confidence_interval
    return Estimate(float(b.mean() - a.mean()), float(ci.low), float(ci.high), level, float(p))


def ks_exact(a: ArrayLike, b: ArrayLike) -> tuple[float, float]:
    """The two-sample KS statistic D and its exact p-value (scipy)."""
    result = stats.ks_2samp(_errors(a, "a"), _errors(b, "b"), method="exact")
    return float(result.statistic), float(result.pvalue)


# --- the complexity-adjusted shift ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdjustedShift:
    """The space coefficient of error ~ space + log complexity (+ factors): ``b - a`` at equal complexity."""

    estimate: float
    se: float  # HC3
    low: float
    high: float
    level: float
    p: float  # HC3 t-test of 0
    p_permutation: float
    n_permutations: int
    df: int
    n_a: int
    n_b: int
    covariates: tuple[str, ...]
    factors: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def design_matrix(table: pd.DataFrame, covariates: Sequence[str] = COMPLEXITY,
                  factors: Sequence[str] = ()) -> pd.DataFrame:
    """[1, log covariates, one dummy per factor level but the first] of ``table``'s rows (no space column)."""
    columns = {"const": np.ones(len(table))}
    for name in covariates:
        values = table[name].to_numpy(dtype=float)
        if (values <= 0).any() or not np.isfinite(values).all():
            raise RegNetExploreError(f"column {name!r}: the adjusted comparison takes its log; it needs positive "
                                     "values")
        columns[f"log_{name}"] = np.log(values)
    frame = pd.DataFrame(columns, index=table.index)
    for name in factors:
        levels = table[name].fillna("unrecorded").astype(str)
        dummies = pd.get_dummies(levels, prefix=name, drop_first=True, dtype=float)
        frame = pd.concat([frame, dummies], axis=1)
    return frame


def _space_coefficients(labels: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The coefficient of ``labels`` (..., n) in least squares of y on [labels, z], for every row of labels at once
    (Frisch-Waugh-Lovell: both residualised on z)."""
    q, _ = np.linalg.qr(z)
    r = labels - (labels @ q) @ q.T
    y_r = y - q @ (q.T @ y)
    return (r @ y_r) / np.einsum("...i,...i->...", r, r)


def adjusted_shift(a: pd.DataFrame, b: pd.DataFrame, covariates: Sequence[str] = COMPLEXITY,
                   factors: Sequence[str] = (), level: float = 0.95, n_permutations: int = 10_000,
                   seed: int = 0) -> AdjustedShift:
    """The shift ``b - a`` in ``error`` at equal log complexity (and factor levels): statsmodels OLS with HC3
    standard errors, and the permutation p-value of the space labels (two-sided)."""
    import statsmodels.api as sm

    both = pd.concat([a, b], ignore_index=True)
    is_b = np.r_[np.zeros(len(a)), np.ones(len(b))]
    z = design_matrix(both, covariates, factors)
    x = pd.concat([pd.Series(is_b, name="space_b"), z], axis=1)
    y = both["error"].to_numpy(dtype=float)
    if np.linalg.matrix_rank(x.to_numpy()) < x.shape[1]:
        raise RegNetExploreError(f"the adjusted comparison's columns {', '.join(x.columns)} are collinear (a factor "
                                 "with one level per space?): drop a factor")
    fit = sm.OLS(y, x).fit(cov_type="HC3")
    low, high = fit.conf_int(alpha=1 - level).loc["space_b"]
    perm = stats.permutation_test((is_b,), lambda lab, axis: _space_coefficients(lab, y, z.to_numpy()),
                                  permutation_type="pairings", n_resamples=n_permutations, vectorized=True,
                                  alternative="two-sided", random_state=seed)
    return AdjustedShift(float(fit.params["space_b"]), float(fit.bse["space_b"]), float(low), float(high), level,
                         float(fit.pvalues["space_b"]), float(perm.pvalue), n_permutations, int(fit.df_resid),
                         len(a), len(b), tuple(covariates), tuple(factors))


# --- equivalence ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests of |shift| < margin: equivalent when both reject at ``alpha`` (the (1 - 2 alpha) interval
    lies inside [-margin, +margin])."""

    margin: float
    alpha: float
    p: float  # the larger of the two one-sided p-values
    low: float
    high: float  # the (1 - 2 alpha) interval
    equivalent: bool

    def to_dict(self) -> dict:
        return asdict(self)


def tost(estimate: float, se: float, df: float, margin: float, alpha: float = 0.05) -> Equivalence:
    """Schuirmann's two one-sided t-tests of an estimate with standard error ``se`` and ``df`` degrees of freedom
    against the margins -margin and +margin."""
    if not margin > 0:
        raise RegNetExploreError(f"margin must be positive, got {margin}")
    p_low = stats.t.sf((estimate + margin) / se, df)  # H0: shift <= -margin
    p_high = stats.t.cdf((estimate - margin) / se, df)  # H0: shift >= +margin
    half = stats.t.ppf(1 - alpha, df) * se
    p = float(max(p_low, p_high))
    return Equivalence(margin, alpha, p, estimate - half, estimate + half, p < alpha)


# --- power ---------------------------------------------------------------------------------------------------------


def null_population(errors: Mapping[str, ArrayLike], noise: float = 0.0, runs: int = 1) -> np.ndarray:
    """Errors of one population with no difference between spaces: each space centred on its median, pooled, and
    shrunk about the pooled mean so that the variance of one model's measurement noise (``noise`` a run, ``runs``
    runs averaged in the table) is removed. Simulated tables draw from it and add the noise back."""
    centred = np.concatenate([_errors(e, name) - np.median(e) for name, e in errors.items()])
    var = centred.var(ddof=1)
    measured = noise**2 / runs
    if measured >= var:
        raise RegNetExploreError(f"noise {noise:g} ({runs} run(s) a model) is as large as the whole spread of the "
                                 f"errors (std {np.sqrt(var):.4g}): it cannot be the noise of these tables")
    mean = centred.mean()
    return mean + (centred - mean) * np.sqrt(1 - measured / var)


def ks_statistics(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The two-sample KS statistic D of the rows of a (k, n) and b (k, m) at once."""
    n, m = a.shape[1], b.shape[1]
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    walk = np.cumsum(np.where(order < n, 1.0 / n, -1.0 / m), axis=1)
    values = np.take_along_axis(both, order, axis=1)
    last_of_tie = np.concatenate([values[:, 1:] != values[:, :-1], np.ones((len(a), 1), bool)], axis=1)
    return np.max(np.abs(np.where(last_of_tie, walk, 0.0)), axis=1)


def ks_asymptotic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two-sided KS p-values of the rows of a and b, as scipy's ``ks_2samp(method="asymp")`` computes them (which
    loops over rows in Python)."""
    n, m = a.shape[1], b.shape[1]
    return stats.kstwo.sf(ks_statistics(a, b), np.round(n * m / (n + m)))


def _rejects(a: np.ndarray, b: np.ndarray, test: str, alpha: float) -> np.ndarray:
    """Which rows' test rejects "no difference" at ``alpha``."""
    if test == "mannwhitney":
        return stats.mannwhitneyu(a, b, axis=1, method="asymptotic").pvalue < alpha
    if test == "ks":  # D above the asymptotic critical value: p < alpha without a p-value per row
        n, m = a.shape[1], b.shape[1]
        return ks_statistics(a, b) > stats.kstwo.isf(alpha, round(n * m / (n + m)))
    if test == "t":
        return stats.ttest_ind(a, b, axis=1).pvalue < alpha
    raise RegNetExploreError(f"test {test!r}: use one of {', '.join(TESTS)}")


def simulated_power(population: ArrayLike, n_a: int, n_b: int, shift: float, test: str = "mannwhitney",
                    noise: float = 0.0, runs: int = 1, alpha: float = 0.05, n_sim: int = 2000,
                    seed: int = 0) -> float:
    """The share of simulated comparisons that reject "no difference" at ``alpha``: two tables of n_a and n_b
    models drawn from ``population`` (true errors), each model's measurement the mean of ``runs`` runs with normal
    noise of std ``noise``, space b's errors shifted by ``shift``. The same seed gives the same draws for every
    shift, so the power is smooth in it."""
    rng = np.random.default_rng(seed)
    pop = np.asarray(population, dtype=float)
    sd = noise / np.sqrt(runs)
    a = rng.choice(pop, (n_sim, n_a)) + rng.normal(0.0, 1.0, (n_sim, n_a)) * sd
    b = rng.choice(pop, (n_sim, n_b)) + rng.normal(0.0, 1.0, (n_sim, n_b)) * sd + shift
    return float(np.mean(_rejects(a, b, test, alpha)))


def detectable_shift(population: ArrayLike, n_a: int, n_b: int, test: str = "mannwhitney", noise: float = 0.0,
                     runs: int = 1, power: float = 0.8, alpha: float = 0.05, n_sim: int = 2000, seed: int = 0,
                     tol: float = 1e-4) -> float:
    """The smallest shift :func:`simulated_power` detects with at least ``power`` (bisection)."""
    pop = np.asarray(population, dtype=float)
    low, high = 0.0, float(np.std(pop) + noise)
    while simulated_power(pop, n_a, n_b, high, test, noise, runs, alpha, n_sim, seed) < power:
        low, high = high, 2 * high
    while high - low > tol:
        mid = (low + high) / 2
        if simulated_power(pop, n_a, n_b, mid, test, noise, runs, alpha, n_sim, seed) >= power:
            high = mid
        else:
            low = mid
    return high


def models_needed(population: ArrayLike, shift: float, test: str = "mannwhitney", noise: float = 0.0,
                  runs: int = 1, power: float = 0.8, alpha: float = 0.05, n_sim: int = 2000, seed: int = 0,
                  limit: int = 100_000) -> int:
    """The fewest models per space (equal sizes) that detect ``shift`` with at least ``power`` (doubling, then
    bisection)."""
    if not shift > 0:
        raise RegNetExploreError(f"shift must be positive, got {shift}")

    def enough(n: int) -> bool:
        return simulated_power(population, n, n, shift, test, noise, runs, alpha, n_sim, seed) >= power

    low, high = 1, 2
    while not enough(high):
        if high >= limit:
            raise RegNetExploreError(f"a shift of {shift:g} needs more than {limit} models per space")
        low, high = high, min(2 * high, limit)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def adjusted_detectable_shift(shift: AdjustedShift, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest adjusted shift its two-sided t-test detects with ``power``: (t_(1-alpha/2) + t_power) standard
    errors, at the fit's degrees of freedom."""
    return float((stats.t.ppf(1 - alpha / 2, shift.df) + stats.t.ppf(power, shift.df)) * shift.se)


# --- trends --------------------------------------------------------------------------------------------------------


def partial_spearman(x: ArrayLike, y: ArrayLike, covariates: np.ndarray | None = None) -> tuple[float, float]:
    """Spearman's correlation of x and y, with ``covariates`` (n, k) partialled out: the ranks of x and y
    residualised on [1, ranks of the covariates], Pearson's r of the residuals, and its t-test with n - 2 - k
    degrees of freedom. Without covariates: scipy's spearmanr."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if covariates is None or covariates.size == 0:
        result = stats.spearmanr(x, y)
        return float(result.statistic), float(result.pvalue)
    covariates = np.asarray(covariates, dtype=float).reshape(len(x), -1)
    z = np.column_stack([np.ones(len(x)), *(stats.rankdata(c) for c in covariates.T)])
    q, _ = np.linalg.qr(z)
    rx, ry = (v - q @ (q.T @ v) for v in (stats.rankdata(x), stats.rankdata(y)))
    r = float(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))
    df = len(x) - 2 - covariates.shape[1]
    t = r * np.sqrt(df / max(1e-300, 1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), df))


def trends(table: pd.DataFrame, params: Sequence[str], covariates: Sequence[str] = COMPLEXITY) -> pd.DataFrame:
    """Spearman's correlation of each design parameter with the error, raw and with log complexity partialled out,
    each family of p-values Holm-corrected (statsmodels); one row per parameter."""
    from statsmodels.stats.multitest import multipletests

    logs = np.column_stack([np.log(table[c].to_numpy(dtype=float)) for c in covariates])
    rows = []
    for name in params:
        values = table[name].to_numpy(dtype=float)
        rho, p = partial_spearman(values, table["error"], None)
        rho_adj, p_adj = partial_spearman(values, table["error"], logs)
        rows.append(dict(param=name, rho=rho, p=p, rho_adjusted=rho_adj, p_adjusted=p_adj))
    out = pd.DataFrame(rows)
    for col in ("p", "p_adjusted"):
        out[f"{col}_holm"] = multipletests(out[col], method="holm")[1] if len(out) else []
    return out


def _spearman_rows(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    rx, ry = (stats.rankdata(v, axis=axis) for v in (x, y))
    rx, ry = (r - r.mean(axis=axis, keepdims=True) for r in (rx, ry))
    return (rx * ry).sum(axis) / np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))


def spearman_interval(x: ArrayLike, y: ArrayLike, level: float = 0.95, n_boot: int = 10_000,
                      seed: int = 0) -> Estimate:
    """Spearman's rho of paired values with a BCa bootstrap interval (pairs resampled; scipy.stats.bootstrap) and
    scipy's p-value of rho = 0."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 4:
        raise RegNetExploreError(f"spearman_interval needs at least 4 pairs of values, got {len(x)} and {len(y)}")
    boot = stats.bootstrap((x, y), _spearman_rows, paired=True, vectorized=True, confidence_level=level,
                           n_resamples=n_boot, method="BCa", random_state=seed)
    rho = stats.spearmanr(x, y)
    ci = boot.confidence_interval
    return Estimate(float(rho.statistic), float(ci.low), float(ci.high), level, float(rho.pvalue))


def detectable_spearman(n: int, above: float = 0.0, power: float = 0.8, level: float = 0.95) -> float:
    """The smallest true Spearman rho whose two-sided ``level`` interval from ``n`` pairs lies above ``above`` with
    probability ``power``: Fisher's z with Bonett and Wright's (2000) variance (1 + rho^2 / 2) / (n - 3), an
    approximation for roughly normal pairs."""
    if n < 4:
        raise RegNetExploreError(f"detectable_spearman needs at least 4 pairs, got {n}")
    z = stats.norm.ppf((1 + level) / 2) + stats.norm.ppf(power)

    def margin(rho: float) -> float:
        return np.arctanh(rho) - np.arctanh(above) - z * np.sqrt((1 + rho**2 / 2) / (n - 3))

    return float(optimize.brentq(margin, above, 1 - 1e-12))


# --- EDFs at a common complexity ------------------------------------------------------------------------------------


def joint_complexity_weights(tables: Mapping[str, pd.DataFrame], columns: Sequence[str] = COMPLEXITY,
                             bins: int = 3) -> dict[str, np.ndarray]:
    """Per-space weights (each summing to 1) that give every space the same distribution over the cells of a
    ``bins`` x ``bins`` grid of pooled quantiles of the log complexities (FLOPs x activations by default): uniform
    over the cells that every space occupies, 0 elsewhere."""
    pooled = pd.concat(list(tables.values()), ignore_index=True)
    edges = [np.quantile(np.log(pooled[c].to_numpy(dtype=float)), np.linspace(0, 1, bins + 1)[1:-1])
             for c in columns]

    def cells(t: pd.DataFrame) -> np.ndarray:
        idx = [np.searchsorted(e, np.log(t[c].to_numpy(dtype=float)), side="right") for c, e in zip(columns, edges)]
        return np.ravel_multi_index(idx, (bins,) * len(columns))

    ids = {name: cells(t) for name, t in tables.items()}
    counts = {name: np.bincount(i, minlength=bins ** len(columns)) for name, i in ids.items()}
    shared = np.logical_and.reduce([c > 0 for c in counts.values()])
    if not shared.any():
        raise RegNetExploreError("no complexity cell holds models of every space: use fewer bins")
    target = shared / shared.sum()
    return {name: np.where(shared[i], target[i] / np.maximum(counts[name][i], 1), 0.0) for name, i in ids.items()}


__all__ = ["COMPLEXITY", "TESTS", "AdjustedShift", "Equivalence", "Estimate", "adjusted_detectable_shift",
           "adjusted_shift", "design_matrix", "detectable_shift", "detectable_spearman", "hodges_lehmann",
           "joint_complexity_weights", "ks_asymptotic", "ks_exact", "ks_statistics", "mean_difference",
           "models_needed", "null_population", "partial_spearman", "simulated_power", "spearman_interval", "tost",
           "trends"]
