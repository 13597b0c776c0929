"""Rank fidelity (analysis/fidelity.py): Spearman against scipy, the seed noise counted by hand, the verdict."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regnet_explore.analysis.fidelity import (
    correlation_ceiling,
    fidelity_reading,
    fidelity_report,
    noise_interval,
    rank_fidelity,
    seed_mean_fidelity,
    seed_noise,
    study_fidelity,
    study_seed_mean_fidelity,
)
from regnet_explore.analysis.stats import detectable_spearman
from regnet_explore.analysis.sweep import PROXY, SweepConfig
from regnet_explore.analysis.sweep.settings import pin_settings
from regnet_explore.errors import RegNetExploreError


def _proxy(errors, first=0):
    return pd.DataFrame({"index": np.arange(first, first + len(errors)), "error": errors})


def _long(strict, four=None, index=None):
    index = np.arange(len(strict)) if index is None else np.asarray(index)
    four = np.full(len(strict), 0.9) if four is None else four
    return pd.DataFrame({"index": index, "AP_car@0.5": 1 - np.asarray(strict), "AP_car": four,
                         "cpu": "kind A"})


def test_seed_noise_is_the_root_mean_of_the_per_network_variances():
    reference = pd.Series([0.10, 0.20, 0.30], index=[0, 1, 2])
    again = pd.Series([0.12, 0.26], index=[0, 1])
    # per network: (0.10 - 0.12)^2 / 2 = 0.0002 and (0.20 - 0.26)^2 / 2 = 0.0018 -> sqrt(0.001)
    assert seed_noise(reference, again) == pytest.approx(0.0316228, abs=1e-6)
    assert np.isnan(seed_noise(reference, pd.Series(dtype=float)))


def test_spearman_is_scipys_on_the_networks_both_tables_hold():
    rng = np.random.default_rng(3)
    proxy = rng.uniform(0.4, 0.6, 30)
    strict = 0.3 * proxy + rng.normal(0, 0.02, 30)
    # the long runs hold networks 0-23 in shuffled order, the proxy table 0-29
    order = rng.permutation(24)
    long = _long(strict[order], index=order)
    r = rank_fidelity(_proxy(proxy), long, _long(strict[:4] + 0.001, index=range(4)), factor=4)
    expected = stats.spearmanr(proxy[:24], strict[:24])
    assert r["models"] == 24
    assert r["spearman"]["estimate"] == pytest.approx(expected.statistic, abs=1e-12)
    assert r["spearman"]["p"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert r["spearman"]["low"] < expected.statistic < r["spearman"]["high"]
    assert r["reference_std"] == pytest.approx(np.std(strict[:24], ddof=1), abs=1e-12)
    assert r["reference_noise"] == pytest.approx(0.001 / np.sqrt(2), abs=1e-9)
    assert r["noise_models"] == 4 and r["informative"] and r["cpu"] == ["kind A"]
    report = fidelity_report(r)
    assert "so the figure is informative" in report and "uninformative" not in report
    assert f"{np.std(strict[:24], ddof=1) / (0.001 / np.sqrt(2)):.2f}x (" in report


def test_a_reference_within_twice_its_noise_is_not_informative():
    strict = np.linspace(0.10, 0.16, 12)  # std 0.0188: above the noise, under twice it
    again = _long(strict[:4] + np.array([0.02, -0.02, 0.02, -0.02]), index=range(4))  # noise 0.02 / sqrt(2)
    proxy = _proxy(np.linspace(0.4, 0.6, 12)[[0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10]])
    r = rank_fidelity(proxy, _long(strict), again, factor=4)
    assert r["reference_std"] < 2 * r["reference_noise"] and not r["informative"]
    assert "uninformative" in fidelity_report(r) and "uninformative" in fidelity_reading(r)
    # without a second seed there is no noise to compare with: never informative
    alone = rank_fidelity(proxy, _long(strict), _long([])[:0], factor=4)
    assert not alone["informative"] and "noise unmeasured (no network trained twice)" in fidelity_report(alone)


def test_runs_scored_without_the_strict_threshold_are_refused():
    long = _long(np.linspace(0.1, 0.2, 6)).drop(columns="AP_car@0.5")
    with pytest.raises(RegNetExploreError, match="no 'AP_car@0.5' column"):
        rank_fidelity(_proxy(np.linspace(0.4, 0.6, 6)), long, long, factor=4)


def _sweep(folder, table, budget, **settings):
    pin_settings(SweepConfig(**{**PROXY, "budget": budget, **settings}, space="regnetx", out=str(folder)))
    with open(folder / "results.jsonl", "w") as f:
        for row in table.to_dict("records"):
            f.write(json.dumps({"space": "regnetx", "status": "ok", **row}) + "\n")


def test_a_study_folder_gives_the_figures_of_its_tables_and_none_without_the_runs(tmp_path):
    rng = np.random.default_rng(5)
    proxy, strict = rng.uniform(0.4, 0.6, 12), rng.uniform(0.05, 0.3, 12)
    _sweep(tmp_path / "regnetx", _proxy(proxy), 512)
    assert study_fidelity(tmp_path) is None
    _sweep(tmp_path / "fidelity-4x-strict", _long(strict).drop(columns="cpu"), 2048)
    assert study_fidelity(tmp_path) is None  # the seed runs are missing
    # seed 1 of all 12 networks (as the amendment trained them): the planned figure still takes its noise from the
    # first four alone, which differ from seed 0 by 0.01 each
    seed_1 = strict + np.r_[np.full(4, 0.01), rng.normal(0, 0.05, 8)]
    _sweep(tmp_path / "fidelity-4x-strict-seed-1", _long(seed_1).drop(columns="cpu"), 2048, train_seed=1)
    r = study_fidelity(tmp_path)
    assert r["factor"] == 4 and r["models"] == 12 and r["noise_models"] == 4 and r["seeds"] == 1
    assert r["reference_noise"] == pytest.approx(0.01 / np.sqrt(2), abs=1e-12)
    assert r["spearman"]["estimate"] == pytest.approx(stats.spearmanr(proxy, strict).statistic, abs=1e-12)
    assert study_seed_mean_fidelity(tmp_path) is None  # seed 2 is missing
    seed_2 = strict + rng.normal(0, 0.05, 12)
    _sweep(tmp_path / "fidelity-4x-strict-seed-2", _long(seed_2[:11]).drop(columns="cpu"), 2048, train_seed=2)
    assert study_seed_mean_fidelity(tmp_path) is None  # seed 2 still training: no partial figure
    _sweep(tmp_path / "fidelity-4x-strict-seed-2", _long(seed_2).drop(columns="cpu"), 2048, train_seed=2)
    mean = study_seed_mean_fidelity(tmp_path)
    assert mean["factor"] == 4 and mean["models"] == 12 and mean["seeds"] == 3 and mean["noise_dof"] == 24
    means = (strict + seed_1 + seed_2) / 3
    assert mean["spearman"]["estimate"] == pytest.approx(stats.spearmanr(proxy, means).statistic, abs=1e-12)


def test_the_mean_over_seeds_is_each_networks_mean_and_its_noise_the_pooled_seed_std_over_root_three():
    rng = np.random.default_rng(11)
    proxy = rng.uniform(0.4, 0.6, 30)
    truth = 0.5 * proxy + rng.normal(0, 0.03, 30)
    seeds = [truth[:24] + rng.normal(0, 0.02, 24) for _ in range(3)]
    # seed 1 in shuffled order, seed 2 without network 23: the mean is over the 23 networks all three hold
    order = rng.permutation(24)
    tables = [_long(seeds[0]), _long(seeds[1][order], index=order), _long(seeds[2][:23])]
    r = seed_mean_fidelity(_proxy(proxy), tables, factor=4)
    runs = np.stack([s[:23] for s in seeds])  # seeds x networks
    means = runs.mean(axis=0)
    pooled = np.sqrt(np.mean(((runs - means) ** 2).sum(axis=0) / 2))
    assert r["models"] == r["noise_models"] == 23 and r["seeds"] == 3 and r["noise_dof"] == 46
    assert r["reference_errors"] == pytest.approx(np.round(means, 4).tolist(), abs=1e-12)
    assert r["run_noise"] == pytest.approx(pooled, abs=1e-12)
    assert r["reference_noise"] == pytest.approx(pooled / np.sqrt(3), abs=1e-12)
    assert r["reference_std"] == pytest.approx(np.std(means, ddof=1), abs=1e-12)
    assert r["informative"] == (np.std(means, ddof=1) >= 2 * pooled / np.sqrt(3))
    assert r["spearman"]["estimate"] == pytest.approx(stats.spearmanr(proxy[:23], means).statistic, abs=1e-12)
    assert r["detectable"] == dict(above_0=detectable_spearman(23), above_bar=detectable_spearman(23, above=0.6))
    report = fidelity_report(r)
    assert f"from a rho of about {detectable_spearman(23):.2f}, lies above the bar of 0.6 from about " in report
    assert "(the mean of 3 training seeds)" in report and "23 networks x 3 seeds, 46 df, over sqrt(3)" in report
    assert "the noise of a 3-seed mean" in fidelity_reading(r)
    with pytest.raises(RegNetExploreError, match="at least two seeds' runs, got 1"):
        seed_mean_fidelity(_proxy(proxy), tables[:1], factor=4)


def test_the_noise_interval_is_the_chi_square_tables():
    # chi-square quantiles with 48 degrees of freedom from the tables: 30.7545 (2.5 %) and 69.0226 (97.5 %)
    low, high = noise_interval(1.0, 48)
    assert low == pytest.approx(np.sqrt(48 / 69.0226), abs=1e-5) and high == pytest.approx(np.sqrt(48 / 30.7545),
                                                                                           abs=1e-5)
    assert np.isnan(noise_interval(0.1, 0)[0])


def test_the_correlation_ceiling_is_what_a_perfect_proxy_reaches_against_a_noisy_reference():
    rng = np.random.default_rng(2)
    truth = rng.normal(0, 0.04, 200_000)  # the networks' true errors; the reference adds noise 0.03
    reference = truth + rng.normal(0, 0.03, truth.size)
    ceiling = correlation_ceiling(reference.std(ddof=1), 0.03)
    assert ceiling == pytest.approx(np.corrcoef(truth, reference)[0, 1], abs=0.005)
    assert ceiling == pytest.approx(0.8, abs=0.005)  # 0.04 / 0.05
    assert correlation_ceiling(0.02, 0.03) == 0.0


@pytest.mark.parametrize("low, high, says, bar", [
    (0.65, 0.9, "keeps the order", "The bar of 0.6 is met with confidence"),
    (0.2, 0.9, "loosely", "The bar of 0.6 lies inside the interval"),
    (-0.1, 0.9, "interval includes 0", "The bar of 0.6 lies inside the interval"),
    # 0.55 / sqrt(1 - (0.01 / 0.05)**2) = 0.561
    (-0.1, 0.55, "cannot vouch for",
     "The bar of 0.6 is missed with confidence (the interval ends at 0.55; about 0.56 corrected for the reference's")])
def test_an_informative_figure_is_read_by_its_interval_and_the_bar(low, high, says, bar):
    r = dict(models=24, seeds=1, factor=4, reference="AP_car@0.5", spearman=dict(estimate=0.3, low=low, high=high),
             reference_std=0.05, reference_noise=0.01, run_noise_interval=[0.008, 0.012], informative=True)
    reading = fidelity_reading(r)
    assert says in reading and "is informative." in reading and bar in reading
    assert "only at the noise's estimate" not in reading  # 0.05 is at least 4x the noise over its interval


def test_an_interval_under_the_bar_that_the_correction_lifts_over_it_is_read_so():
    """Spread 0.05, noise 0.025: ceiling sqrt(1 - 0.25) = 0.866, so the upper end 0.55 corrects to 0.635."""
    r = dict(models=24, seeds=1, factor=4, reference="AP_car@0.5", spearman=dict(estimate=0.2, low=-0.1, high=0.55),
             reference_std=0.05, reference_noise=0.025, run_noise_interval=[0.02, 0.04], informative=True)
    assert "(the interval ends at 0.55; about 0.64 corrected for the reference's noise, above the bar)" \
        in fidelity_reading(r)


def test_a_spread_twice_the_noise_only_at_its_estimate_is_read_so():
    """The amendment's case: spread 0.0433 against a 3-seed mean's noise 0.0214, one run's noise in [0.0309, 0.0462]:
    0.0433 / (0.0462 / sqrt 3) = 1.62, 0.0433 / (0.0309 / sqrt 3) = 2.43; corrected, 0.46 / sqrt(1 - 1 / 2.023**2)
    = 0.53."""
    r = dict(models=24, seeds=3, factor=4, reference="AP_car@0.5", spearman=dict(estimate=0.17, low=-0.21, high=0.46),
             reference_std=0.0433, reference_noise=0.0214, run_noise_interval=[0.0309, 0.0462], informative=True)
    reading = fidelity_reading(r)
    assert "over its 95 % interval the spread is 1.62x to 2.43x it), so the figure is informative" in reading
    assert "missed with confidence (the interval ends at 0.46; about 0.53 corrected for the reference's noise)" \
        in reading


def _shipped_rows(folder):
    """A shipped sweep table's finished rows by sampling index, read from the file (not through the package)."""
    from regnet_explore.analysis.shipped import RESULTS_DIR

    lines = (RESULTS_DIR / folder / "results.jsonl").read_text().splitlines()
    return {r["index"]: r for r in map(json.loads, lines) if r.get("error") is not None}


def test_the_shipped_fidelity_is_24_networks_scored_as_planned():
    """The plan (docs/sweeps.md): RegNetX 0-23 at 4x the budget, 1 - AP_car@0.5 as the reference, 4 networks with a
    second seed (the first four: the amendment trained seed 1 for all 24, which leaves the planned figure as it came
    out); the figure recomputed here from the shipped rows with scipy alone (BCa by scipy.stats.bootstrap)."""
    from regnet_explore.analysis.shipped import RESULTS_DIR, shipped_fidelity

    proxy, long, again = (_shipped_rows(f) for f in ("regnetx", "fidelity-4x-strict", "fidelity-4x-strict-seed-1"))
    assert sorted(long) == list(range(24)) and sorted(again) == list(range(24))
    def budget(folder):
        return json.loads((RESULTS_DIR / folder / "sweep.json").read_text())["budget"]

    assert budget("regnetx") == PROXY["budget"]
    assert budget("fidelity-4x-strict") == budget("fidelity-4x-strict-seed-1") == 4 * PROXY["budget"]
    x = np.array([proxy[i]["error"] for i in range(24)])
    y = np.array([1 - long[i]["AP_car@0.5"] for i in range(24)])
    r = shipped_fidelity()
    assert r["models"] == 24 and r["factor"] == 4 and r["noise_models"] == 4
    assert r["spearman"]["estimate"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)

    ci = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                         n_resamples=2_000, method="BCa", random_state=0).confidence_interval
    # the package draws 10,000 resamples: the interval's ends agree to the resampling's own error
    assert r["spearman"]["low"] == pytest.approx(ci.low, abs=0.05)
    assert r["spearman"]["high"] == pytest.approx(ci.high, abs=0.05)
    noise = np.sqrt(np.mean([np.var([1 - long[i]["AP_car@0.5"], 1 - again[i]["AP_car@0.5"]], ddof=1)
                             for i in range(4)]))
    assert r["reference_noise"] == pytest.approx(noise, abs=1e-12)
    assert r["informative"] == (np.std(y, ddof=1) >= 2 * noise)
    assert {long[i]["cpu"] for i in long} == {again[i]["cpu"] for i in again} == set(r["cpu"])


def test_the_shipped_seed_mean_fidelity_is_24_networks_x_3_seeds_as_amended():
    """The amendment (docs/sweeps.md): the reference is each network's mean of 1 - AP_car@0.5 over training seeds
    0, 1 and 2 at 4x the budget; its noise one run's seed std pooled over the 24 networks (48 df) over sqrt(3);
    recomputed here from the shipped rows with numpy and scipy alone."""
    from regnet_explore.analysis.shipped import RESULTS_DIR, shipped_seed_mean_fidelity

    proxy = _shipped_rows("regnetx")
    seeds = [_shipped_rows(f) for f in ("fidelity-4x-strict", "fidelity-4x-strict-seed-1", "fidelity-4x-strict-seed-2")]
    assert all(sorted(s) == list(range(24)) for s in seeds)
    settings = [json.loads((RESULTS_DIR / f / "sweep.json").read_text())
                for f in ("fidelity-4x-strict", "fidelity-4x-strict-seed-1", "fidelity-4x-strict-seed-2")]
    assert [s["train_seed"] for s in settings] == [None, 1, 2] and {s["budget"] for s in settings} == {2048}
    runs = np.array([[1 - s[i]["AP_car@0.5"] for i in range(24)] for s in seeds])  # seeds x networks
    means = runs.mean(axis=0)
    one_run = np.sqrt(np.mean(runs.var(axis=0, ddof=1)))
    x = np.array([proxy[i]["error"] for i in range(24)])
    r = shipped_seed_mean_fidelity()
    assert r["models"] == 24 and r["seeds"] == 3 and r["noise_dof"] == 48
    assert r["run_noise"] == pytest.approx(one_run, abs=1e-12)
    assert r["reference_noise"] == pytest.approx(one_run / np.sqrt(3), abs=1e-12)
    assert r["reference_std"] == pytest.approx(np.std(means, ddof=1), abs=1e-12)
    assert r["informative"] == (np.std(means, ddof=1) >= 2 * one_run / np.sqrt(3))
    # one run's noise with 48 degrees of freedom: the chi-square table's 2.5 % and 97.5 % points (30.7545, 69.0226)
    assert r["run_noise_interval"] == pytest.approx([one_run * np.sqrt(48 / 69.0226), one_run * np.sqrt(48 / 30.7545)],
                                                    rel=1e-5)
    assert set(r["cpu"]) == {s[i]["cpu"] for s in seeds for i in range(24)}
    # the report: the spread over the noise with that ratio over the noise's interval, and Spearman's correction
    ratio = np.std(means, ddof=1) / (one_run / np.sqrt(3))
    bounds = ratio * np.sqrt([30.7545 / 48, 69.0226 / 48])
    ceiling = np.sqrt(1 - 1 / ratio**2)
    text = fidelity_report(r)
    assert f"{ratio:.2f}x ({bounds[0]:.2f}x to {bounds[1]:.2f}x over the noise's interval)" in text
    assert f"the estimate is about {stats.spearmanr(x, means).statistic / ceiling:.2f}, " in text
    assert r["spearman"]["estimate"] == pytest.approx(stats.spearmanr(x, means).statistic, abs=1e-12)
    ci = stats.bootstrap((x, means), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                         n_resamples=2_000, method="BCa", random_state=0).confidence_interval
    assert r["spearman"]["low"] == pytest.approx(ci.low, abs=0.05)
    assert r["spearman"]["high"] == pytest.approx(ci.high, abs=0.05)
