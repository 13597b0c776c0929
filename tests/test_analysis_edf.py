"""Error EDFs: hand-computed values, complexity weights, KS distance, band coverage and the empirical bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from regnet_explore.analysis.edf import (
    BestValue,
    bootstrap_band,
    bootstrap_best,
    compare_spaces,
    complexity_bins,
    complexity_weights,
    edf,
    edf_quantile,
    ks_distance,
    ks_test,
    matched_weights,
    summary,
    trend,
)
from regnet_explore.errors import RegNetExploreError

REPS, N = 300, 200  # coverage simulations: repetitions of samples of N models
LEVEL = 0.95
TOL = 3 * np.sqrt(LEVEL * (1 - LEVEL) / REPS)  # three binomial standard deviations of the observed coverage


def test_edf_counts_errors_at_or_below_e():
    grid, f = edf([3, 1, 2, 2])
    np.testing.assert_array_equal(grid, [1, 2, 3])
    np.testing.assert_array_equal(f, [0.25, 0.75, 1.0])
    _, f = edf([3, 1, 2, 2], grid=[0, 1, 1.5, 2, 10])
    np.testing.assert_array_equal(f, [0, 0.25, 0.25, 0.75, 1.0])


def test_weighted_edf():
    np.testing.assert_array_equal(edf([1, 2, 3], [2, 1, 1])[1], [0.5, 0.75, 1.0])
    np.testing.assert_array_equal(edf([1, 2, 3], [20, 10, 10])[1], [0.5, 0.75, 1.0])
    grid, f = edf([3, 2, 1], [1, 1, 0])  # weights follow their errors; a zero-weight model is not on the grid
    np.testing.assert_array_equal(grid, [2, 3])
    np.testing.assert_array_equal(f, [0.5, 1.0])
    np.testing.assert_array_equal(edf([3, 2, 1], [1, 1, 0], grid=[1, 2, 3])[1], [0.0, 0.5, 1.0])


@pytest.mark.parametrize("errors, weights", [([], None), ([0.1, np.nan], None), ([0.1, 0.2], [1.0]),
                                             ([0.1, 0.2], [1.0, -1.0]), ([0.1, 0.2], [0.0, 0.0])])
def test_edf_rejects_bad_input(errors, weights):
    with pytest.raises(RegNetExploreError):
        edf(errors, weights)


def test_ks_distance():
    assert ks_distance([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert ks_distance([1, 2], [3, 4]) == 1.0
    assert ks_distance([1, 2, 3], [3, 2, 1]) == 0.0
    assert ks_distance([1, 2], [1, 2], weights_a=[3, 1]) == pytest.approx(0.25)  # F_a = (3/4, 1), F_b = (1/2, 1)
    # F_a = 1/3, 2/3, 2/3, 1 and F_b = 0, 1/2, 1, 1 at 1, 2, 3, 5
    assert ks_distance([1, 2, 5], [2, 3]) == ks_distance([2, 3], [1, 2, 5]) == pytest.approx(1 / 3)


def test_summary_and_quantiles():
    s = summary([0.3, 0.1, 0.2, 0.4], thresholds=[0.2, 0.25])
    assert s == pytest.approx({"n": 4, "n_eff": 4, "min": 0.1, "mean": 0.25, "q10": 0.1, "q25": 0.1, "median": 0.2,
                               "frac_le_0.2": 0.5, "frac_le_0.25": 0.5})
    # F = 1/8, 2/8, 3/8, 1 at errors 1..4
    s = summary([1, 2, 3, 4], [1, 1, 1, 5])
    assert s == pytest.approx({"n": 4, "n_eff": 64 / 28, "min": 1, "mean": 3.25, "q10": 1, "q25": 2, "median": 4})
    assert summary([5, 1, 2], [1, 0, 1])["min"] == 2  # a zero-weight model is not counted
    np.testing.assert_array_equal(edf_quantile([1, 2, 3, 4], [0, 0.25, 0.26, 0.5, 1]), [1, 1, 2, 2, 4])


def test_complexity_weights_by_hand():
    # bins [1, 10) and [10, 100]: three models, then two, and 200 lies outside
    w = complexity_weights([1, 2, 5, 10, 50, 200], [1, 10, 100])
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 6, 1 / 4, 1 / 4, 0])
    w = complexity_weights([1, 2, 5, 10, 50], [1, 10, 100], reference=[1, 3])
    np.testing.assert_allclose(w, [1 / 12, 1 / 12, 1 / 12, 3 / 8, 3 / 8])
    # two log-spaced bins over [1, 100] split at 10; the maximum belongs to the last bin
    np.testing.assert_allclose(complexity_weights([1, 10, 100], 2), [1 / 2, 1 / 4, 1 / 4])
    # an empty bin with no reference mass gets nothing; a uniform target skips it
    np.testing.assert_allclose(complexity_weights([1, 2, 500], [1, 10, 100, 1000]), [1 / 4, 1 / 4, 1 / 2])


def test_complexity_weights_reject_unmatchable_reference():
    with pytest.raises(RegNetExploreError, match="bin 1"):
        complexity_weights([1, 2, 500], [1, 10, 100, 1000], reference=[1, 1, 1])
    with pytest.raises(RegNetExploreError, match="positive"):
        complexity_weights([0, 1], 2)
    with pytest.raises(RegNetExploreError, match="no model"):
        complexity_weights([1, 2], [10, 100])


def test_matched_weights_by_hand():
    w = matched_weights({"a": [1, 2, 20, 30, 40], "b": [3, 50, 60]}, [1, 10, 100])
    np.testing.assert_allclose(w["a"], [1 / 4, 1 / 4, 1 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(w["b"], [1 / 2, 1 / 4, 1 / 4])
    # only "a" reaches [100, 1000]: that bin leaves the comparison
    w = matched_weights({"a": [1, 20, 500], "b": [3, 50]}, [1, 10, 100, 1000])
    np.testing.assert_allclose(w["a"], [1 / 2, 1 / 2, 0])
    np.testing.assert_allclose(complexity_bins([[1, 50, 1000], [10, 100, 5000]], 2), [10, np.sqrt(10 * 1000), 1000])


def test_spaces_without_common_complexity_are_rejected():
    with pytest.raises(RegNetExploreError, match="do not overlap"):
        matched_weights({"a": [1, 2], "b": [10, 20]})
    with pytest.raises(RegNetExploreError, match="every space"):
        matched_weights({"a": [1, 2], "b": [50, 60]}, [1, 10, 100])


def test_normalisation_removes_a_complexity_confound():
    # same error-vs-complexity law, but space b samples large models more often: raw EDFs differ, normalised agree
    rng = np.random.default_rng(0)
    ca, cb = 10 ** rng.uniform(0, 2, 1000), 10 ** (2 * np.sqrt(rng.uniform(0, 1, 1000)))
    ea, eb = (50 - 5 * np.log10(c) + rng.normal(0, 1, c.size) for c in (ca, cb))
    assert ks_distance(ea, eb) > 0.15
    weights = matched_weights({"a": ca, "b": cb}, bins=10)
    grid = np.unique(np.concatenate([ea, eb]))
    (_, fa), (_, fb) = edf(ea, weights["a"], grid), edf(eb, weights["b"], grid)
    assert np.abs(fa - fb).max() < 0.07


def test_band_basics():
    x = np.random.default_rng(0).normal(size=50)
    grid, f = edf(x)
    for method in ("pointwise", "simultaneous", "dkw"):
        g, lo, hi = bootstrap_band(x, method=method, n_boot=200)
        np.testing.assert_array_equal(g, grid)
        assert np.all((0 <= lo) & (lo <= f) & (f <= hi) & (hi <= 1))
        assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) >= 0)
        np.testing.assert_array_equal(bootstrap_band(x, method=method, n_boot=200)[1], lo)  # seeded
    _, lo, hi = bootstrap_band(np.linspace(0, 1, 200), grid=[0.5], method="dkw")
    assert (lo[0], hi[0]) == pytest.approx((0.5 - 0.0960323, 0.5 + 0.0960323))  # sqrt(log(40) / 400)
    with pytest.raises(RegNetExploreError, match="method"):
        bootstrap_band(x, method="bonferroni")
    with pytest.raises(RegNetExploreError, match="level"):
        bootstrap_band(x, level=95)


def _covers_cdf(x: np.ndarray, cdf, method: str, seed: int) -> bool:
    """Whether the band contains the continuous ``cdf`` everywhere: the band is a right-continuous step, so on
    [x_i, x_i+1) its lower edge must stay below cdf(x_i) and its upper edge above cdf(x_i+1)."""
    xs = np.sort(x)
    _, lo, hi = bootstrap_band(x, grid=np.concatenate([[xs[0] - 1], xs]), method=method, n_boot=500, seed=seed)
    truth = cdf(xs)
    return bool(np.all(lo[1:] <= truth) and np.all(truth <= hi[:-1]))


@pytest.mark.parametrize("method", ["simultaneous", "dkw"])
def test_simultaneous_bands_cover_the_true_cdf(method):
    rng = np.random.default_rng(1)
    samples = rng.exponential(size=(REPS, N))
    coverage = np.mean([_covers_cdf(x, lambda t: 1 - np.exp(-t), method, seed) for seed, x in enumerate(samples)])
    assert abs(coverage - LEVEL) < TOL, coverage


def test_pointwise_band_covers_at_a_fixed_error():
    rng = np.random.default_rng(2)
    truth = 0.6914624612740131  # standard normal CDF at 0.5
    bands = [bootstrap_band(x, grid=[0.5], n_boot=500, seed=seed) for seed, x in enumerate(rng.normal(size=(REPS, N)))]
    coverage = np.mean([lo[0] <= truth <= hi[0] for _, lo, hi in bands])
    assert abs(coverage - LEVEL) < TOL, coverage


def test_bootstrap_best_by_hand():
    # each round draws 2 of {(0, 0), (1, 1)}: the best value is 0 unless both draws are the second pair (1 in 4)
    assert bootstrap_best([0, 1], [0, 1], sample=1.0) == BestValue(0.0, 0.0, 1.0)
    assert bootstrap_best([7, 7, 7], [0.3, 0.1, 0.2]) == BestValue(7.0, 7.0, 7.0)


def test_bootstrap_best_finds_the_optimum():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 6, 500)
    errors = (values - 3) ** 2 + rng.normal(0, 0.5, 500)
    best = bootstrap_best(values, errors)
    assert best.lo < 3 < best.hi and best.hi - best.lo < 1.5
    assert bootstrap_best(values, errors) == best
    top = bootstrap_best(values, errors, top=5)
    assert top.lo < 3 < top.hi and top.hi - top.lo < best.hi - best.lo  # averaging narrows the interval
    with pytest.raises(RegNetExploreError):
        bootstrap_best(values, errors[:-1])


def test_ks_test_is_scipys_two_sample_test_and_weights_use_effective_sizes():
    from scipy import stats


    rng = np.random.default_rng(0)
    a, b = rng.normal(0.4, 0.05, 40), rng.normal(0.45, 0.05, 30)
    result = ks_test(a, b)
    reference = stats.ks_2samp(a, b)
    assert (result.statistic, result.pvalue) == (pytest.approx(reference.statistic), pytest.approx(reference.pvalue))
    assert (result.n_a, result.n_b) == (40, 30)
    # equal weights: the same D, effective sizes n, and the asymptotic p-value
    weighted = ks_test(a, b, np.full(40, 0.5), np.full(30, 2.0))
    assert weighted.statistic == pytest.approx(reference.statistic)
    assert (weighted.n_a, weighted.n_b) == (pytest.approx(40), pytest.approx(30))
    assert weighted.pvalue == pytest.approx(stats.kstwobign.sf(reference.statistic * np.sqrt(40 * 30 / 70)))
    # half the weight on one model shrinks its sample's effective size
    w = np.ones(40)
    w[0] = 39
    assert ks_test(a, b, w, None).n_a == pytest.approx(78**2 / (39**2 + 39))
    assert ks_test(a, a + 1).pvalue < 1e-6 and ks_test(a, a).pvalue == pytest.approx(1.0)


def test_trend_is_the_binned_median():
    values = np.arange(12, dtype=float)
    errors = np.array([5, 1, 3, 2, 2, 9, 0, 4, 4, 7, 7, 1], dtype=float)
    x, y = trend(values, errors, bins=3)  # bins of 4 models: [0..3], [4..7], [8..11]
    assert x.tolist() == [1.5, 5.5, 9.5] and y.tolist() == [2.5, 3.0, 5.5]
    x, y = trend(np.ones(5), np.arange(5.0), bins=4)  # one value: one bin
    assert x.tolist() == [1.0] and y.tolist() == [2.0]


def test_compare_spaces_names_the_better_space_only_when_the_test_rejects():
    rng = np.random.default_rng(1)
    good, bad = rng.normal(0.40, 0.02, 60), rng.normal(0.45, 0.02, 60)
    result = compare_spaces({"bad": bad, "good": good}, thresholds=[0.42])
    assert result.verdict.startswith("good is better than bad") and result.ks.pvalue < 0.05
    assert result.summaries["good"]["frac_le_0.42"] > result.summaries["bad"]["frac_le_0.42"]
    same = compare_spaces({"a": good[:30], "b": good[30:]})
    assert same.verdict.startswith("a and b cannot be told apart") and same.ks.pvalue >= 0.05
