"""The design-space comparison's statistics, each against scipy / statsmodels or a case whose answer is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.weightstats import ttost_ind

from regnet_explore.analysis import stats as st
from regnet_explore.analysis.shipped import shipped_results
from regnet_explore.errors import RegNetExploreError


def _normals(n_a=40, n_b=50, shift=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n_a), rng.normal(shift, 1, n_b)


def test_hodges_lehmann_is_the_median_pairwise_difference_and_inverts_mann_whitney():
    a, b = _normals(23, 31)
    hl = st.hodges_lehmann(a, b)
    assert hl.estimate == pytest.approx(np.median([y - x for x, y in itertools.product(a, b)]))
    assert hl.p == pytest.approx(stats.mannwhitneyu(b, a).pvalue, rel=1e-12)
    # the interval is the set of shifts the Mann-Whitney test does not reject: just outside it rejects, inside not
    diffs = np.sort(np.subtract.outer(b, a).ravel())
    for end, outward in ((hl.low, -1), (hl.high, +1)):
        i = np.searchsorted(diffs, end)
        outside = (diffs[i] + diffs[i + outward]) / 2
        inside = (diffs[i] + diffs[i - outward]) / 2
        assert stats.mannwhitneyu(b - outside, a, method="asymptotic").pvalue < 0.05
        assert stats.mannwhitneyu(b - inside, a, method="asymptotic").pvalue >= 0.05


def test_ks_exact_on_a_case_counted_by_hand():
    # all of b above all of a: D = 1 and P(D = 1) = 2 / C(6, 3) orderings
    assert st.ks_exact([1, 2, 3], [4, 5, 6]) == pytest.approx((1.0, 2 / math.comb(6, 3)))


def test_vectorised_ks_is_scipys_asymptotic_ks():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(20, 37)).round(1), rng.normal(0.3, 1, size=(20, 29)).round(1)  # rounded: with ties
    expected = [stats.ks_2samp(x, y, method="asymp").pvalue for x, y in zip(a, b)]
    assert st.ks_asymptotic(a, b) == pytest.approx(expected, rel=1e-9)
    assert st._rejects(a, b, "ks", 0.05).tolist() == [p < 0.05 for p in expected]


def test_mean_difference_interval_is_about_welchs():
    a, b = _normals(200, 300, shift=0.5)
    md = st.mean_difference(a, b)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert md.estimate == pytest.approx(b.mean() - a.mean())
    assert md.high - md.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert md.low < 0.5 < md.high and md.p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)


def _study() -> tuple[pd.DataFrame, pd.DataFrame]:
    return shipped_results("regnetx").iloc[:112], shipped_results("anynetxa").iloc[:112]


def test_adjusted_shift_is_statsmodels_formula_ols_with_hc3():
    a, b = _study()
    shift = st.adjusted_shift(a, b, n_permutations=500)
    both = pd.concat([a.assign(space_b=0), b.assign(space_b=1)], ignore_index=True)
    fit = smf.ols("error ~ space_b + np.log(flops) + np.log(acts)", both).fit(cov_type="HC3")
    assert shift.estimate == pytest.approx(fit.params["space_b"], rel=1e-9)
    assert shift.se == pytest.approx(fit.bse["space_b"], rel=1e-9)
    assert (shift.low, shift.high) == pytest.approx(tuple(fit.conf_int().loc["space_b"]), rel=1e-9)
    # the permutation statistic, unpermuted, is the same coefficient (Frisch-Waugh-Lovell)
    z = st.design_matrix(both).to_numpy()
    coef = st._space_coefficients(both["space_b"].to_numpy(float), both["error"].to_numpy(), z)
    assert coef == pytest.approx(shift.estimate, rel=1e-9)


def test_a_planted_shift_moves_the_estimate_by_itself_and_shuffled_labels_cover_zero():
    a, b = _study()
    base = st.adjusted_shift(a, b, n_permutations=200)
    planted = st.adjusted_shift(a, b.assign(error=b["error"] + 0.05), n_permutations=200)
    assert planted.estimate - base.estimate == pytest.approx(0.05, abs=1e-12)
    both = pd.concat([a, b], ignore_index=True)
    covered = 0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(both))
        shuffled = st.adjusted_shift(both.iloc[order[:112]], both.iloc[order[112:]], n_permutations=200)
        covered += shuffled.low < 0 < shuffled.high
    assert covered >= 17  # 95 % intervals: 19 of 20 expected, 17 or fewer has probability 0.075


def test_a_cpu_kind_confounded_with_the_space_is_refused():
    a, b = _study()
    with pytest.raises(RegNetExploreError, match="collinear"):
        st.adjusted_shift(a.assign(cpu="x"), b.assign(cpu="y"), factors=("cpu",), n_permutations=200)
    mixed = st.adjusted_shift(a.assign(cpu=["x", "y"] * 56), b.assign(cpu=["y", "x"] * 56), factors=("cpu",),
                              n_permutations=200)
    assert mixed.factors == ("cpu",) and mixed.df == 224 - 5


def test_tost_equals_statsmodels_for_two_means():
    a, b = _normals(60, 70, shift=0.05, seed=3)
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    se = pooled * np.sqrt(1 / len(a) + 1 / len(b))
    for margin in (0.2, 0.5, 1.0):
        ours = st.tost(b.mean() - a.mean(), se, len(a) + len(b) - 2, margin)
        theirs = ttost_ind(b, a, -margin, margin, usevar="pooled")[0]
        assert ours.p == pytest.approx(theirs, rel=1e-9)
        assert ours.equivalent == (theirs < 0.05)


def test_simulated_power_recovers_the_t_tests_known_power():
    population = np.random.default_rng(1).normal(0, 1, 200_000)  # a normal population
    for n, shift in ((30, 0.5), (100, 0.3), (224, 0.2)):
        known = TTestIndPower().power(effect_size=shift, nobs1=n, alpha=0.05, ratio=1.0)
        assert st.simulated_power(population, n, n, shift, "t", n_sim=4000) == pytest.approx(known, abs=0.025)


def test_detectable_shift_and_models_needed_agree_with_the_t_tests_power_analysis():
    population = np.random.default_rng(2).normal(0, 1, 200_000)
    shift = st.detectable_shift(population, 64, 64, "t", n_sim=4000)
    assert shift == pytest.approx(TTestIndPower().solve_power(nobs1=64, alpha=0.05, power=0.8), rel=0.06)
    n = st.models_needed(population, 0.4, "t", n_sim=4000)
    assert n == pytest.approx(TTestIndPower().solve_power(effect_size=0.4, alpha=0.05, power=0.8), rel=0.08)


def test_null_population_removes_the_noise_variance():
    rng = np.random.default_rng(4)
    errors = {"a": rng.normal(0.5, 0.1, 500), "b": rng.normal(0.6, 0.1, 500)}
    pop = st.null_population(errors, noise=0.06, runs=1)
    pooled = np.concatenate([e - np.median(e) for e in errors.values()])
    assert pop.var(ddof=1) == pytest.approx(pooled.var(ddof=1) - 0.06**2, rel=1e-9)
    assert st.null_population(errors, noise=0.06, runs=4).var(ddof=1) == pytest.approx(
        pooled.var(ddof=1) - 0.06**2 / 4, rel=1e-9)
    with pytest.raises(RegNetExploreError, match="as large as the whole spread"):
        st.null_population(errors, noise=0.2)


def test_partial_spearman_is_the_rank_regressions_t_test():
    rng = np.random.default_rng(5)
    c = rng.normal(size=(150, 2))
    x = c[:, 0] + rng.normal(size=150)
    y = c[:, 0] + 0.3 * x + rng.normal(size=150)
    assert st.partial_spearman(x, y) == pytest.approx(tuple(stats.spearmanr(x, y)))
    r, p = st.partial_spearman(x, y, c)
    ranks = pd.DataFrame({"y": stats.rankdata(y), "x": stats.rankdata(x), "c0": stats.rankdata(c[:, 0]),
                          "c1": stats.rankdata(c[:, 1])})
    fit = smf.ols("y ~ x + c0 + c1", ranks).fit()
    assert p == pytest.approx(fit.pvalues["x"], rel=1e-9)
    assert np.sign(r) == np.sign(fit.params["x"])


def test_trends_holm_corrects_each_column():
    a, _ = _study()
    table = st.trends(a, ["depth", "w0", "wa", "wm", "group_w"])
    holm = np.minimum(1, np.maximum.accumulate(np.sort(table["p"]) * np.arange(5, 0, -1)))  # Holm by hand
    assert np.sort(table["p_holm"]) == pytest.approx(holm)
    w0 = table.set_index("param").loc["w0"]
    assert w0["rho"] == pytest.approx(stats.spearmanr(a["w0"], a["error"]).statistic)


def test_joint_complexity_weights_equalise_the_cells():
    a, b = _study()
    w = st.joint_complexity_weights({"a": a, "b": b})
    assert w["a"].sum() == pytest.approx(1) and w["b"].sum() == pytest.approx(1)
    pooled = pd.concat([a, b])
    edges = [np.quantile(np.log(pooled[c]), [1 / 3, 2 / 3]) for c in ("flops", "acts")]

    def mass(t, weights):
        cell = [np.searchsorted(e, np.log(t[c]), side="right") for c, e in zip(("flops", "acts"), edges)]
        return pd.Series(weights).groupby([cell[0], cell[1]]).sum()

    assert mass(a, w["a"]).to_numpy() == pytest.approx(mass(b, w["b"]).reindex(mass(a, w["a"]).index).to_numpy())


def test_spearman_interval_covers_the_known_rank_correlation():
    rho_pearson = 0.6
    known = 6 / np.pi * np.arcsin(rho_pearson / 2)  # Spearman's rho of a bivariate normal
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(30):
        x, y = rng.multivariate_normal([0, 0], [[1, rho_pearson], [rho_pearson, 1]], 40).T
        est = st.spearman_interval(x, y, n_boot=2000, seed=1)
        assert est.estimate == pytest.approx(stats.spearmanr(x, y).statistic)
        covered += est.low < known < est.high
    assert covered >= 25  # 95 % intervals: 28.5 of 30 expected


def test_compare_shows_its_stages_and_the_e_fit_models_only_when_asked(capsys):
    from regnet_explore.analysis.comparison import STAGES, ComparisonSettings, compare, e_fit
    from regnet_explore.analysis.fit import fit_block_widths, stage_to_block_widths

    tables = {name: shipped_results(name).head(12) for name in ("regnetx", "anynetxa")}
    settings = ComparisonSettings(permutations=200, simulations=200)
    quiet = compare(tables, settings)
    assert capsys.readouterr().err == ""
    shown = compare(tables, settings, progress=True)
    bar = capsys.readouterr().err
    # each stage is shown as it starts and the end as it ends (refreshed on purpose); within e_fit, tqdm refreshes
    # at most every 0.1 s, so which counts appear between its first (0/12) and last depends on the CPU's speed
    assert all(stage in bar for stage in STAGES) and "4/4" in bar and "done" in bar
    assert "e_fit:   0%|" in bar and "0/12" in bar
    assert shown == quiet  # the bar changes nothing it computes
    anynet = tables["anynetxa"]
    assert e_fit(anynet, progress=True).tolist() == [
        fit_block_widths(stage_to_block_widths(w, d)).fit_error
        for w, d in zip(anynet["stage_widths"], anynet["stage_depths"])]
    assert "0/12" in capsys.readouterr().err


def _spearman_samples(rho: float, n: int, m: int, rng) -> np.ndarray:
    """m samples' Spearman rho, n bivariate normal pairs each, of population Spearman rho ``rho``."""
    r = 2 * np.sin(np.pi * rho / 6)  # the Pearson correlation of a bivariate normal with that Spearman rho
    x = rng.standard_normal((m, n))
    y = r * x + np.sqrt(1 - r * r) * rng.standard_normal((m, n))
    rx, ry = (stats.rankdata(v, axis=1) - (n + 1) / 2 for v in (x, y))
    return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


@pytest.mark.parametrize("n, above", [(24, 0.0), (24, 0.6), (48, 0.0)])
def test_the_detectable_spearman_is_detected_four_times_in_five(n, above):
    rho = st.detectable_spearman(n, above)
    rng = np.random.default_rng(4)
    for true, power in [(rho, (0.75, 0.86)), ((rho + above) / 2, (0.0, 0.6))]:
        rs = _spearman_samples(true, n, 20_000, rng)
        low = np.tanh(np.arctanh(rs) - stats.norm.ppf(0.975) * np.sqrt((1 + rs**2 / 2) / (n - 3)))
        assert power[0] <= np.mean(low > above) <= power[1], (true, np.mean(low > above))
    with pytest.raises(RegNetExploreError, match="at least 4 pairs, got 3"):
        st.detectable_spearman(3)


def test_the_bca_interval_of_24_pairs_excludes_0_about_as_often_as_the_detectable_rho_says():
    rho = st.detectable_spearman(24)
    r = 2 * np.sin(np.pi * rho / 6)
    rng = np.random.default_rng(8)
    hits = [st.spearman_interval(*rng.multivariate_normal([0, 0], [[1, r], [r, 1]], 24).T, n_boot=1000).low > 0
            for _ in range(100)]
    assert 0.65 <= np.mean(hits) <= 0.92  # 0.8 by the approximation; 100 draws: binomial sd 0.04
