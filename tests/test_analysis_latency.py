"""Latency as a design-space axis: a tiny sweep's models timed in two precisions, failures recorded, resuming, and
the analysis (correlations, Pareto front, budget table) against scipy and brute force."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regnet_explore.analysis.latency import LatencyConfig, MixedRunsWarning, load_latency, run_latency
from regnet_explore.analysis.latency_analysis import analyse, budget_table, correlations, format_analysis, pareto_front
from regnet_explore.analysis.sweep import load_results
from regnet_explore.cli import main
from regnet_explore.machine import cpu_kind

from .helpers import cli_error

STAGE_MS = ("voxelize_ms", "encoder_ms", "scatter_ms", "backbone_ms", "neck_ms", "head_ms", "decode_ms")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A small frame (4,000 points in the detector's range) so that a full-range detector runs in a second."""
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-40, 40, (4000, 2)), rng.uniform(-3, 1, 4000), np.zeros(4000)])
    path = tmp_path_factory.mktemp("cloud") / "frame.npy"
    np.save(path, points.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def broken_sweep(tiny_sweep, tmp_path_factory):
    """The tiny sweep with a fourth row whose last stage has width 0: it cannot be built."""
    out = tmp_path_factory.mktemp("broken") / "sweep"
    shutil.copytree(tiny_sweep, out, ignore=shutil.ignore_patterns("models"))
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    row.update(index=3, stage_widths=row["stage_widths"][:-1] + [0])
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return out


@pytest.fixture(scope="module")
def timed(broken_sweep, cloud, tmp_path_factory):
    cfg = LatencyConfig(sweeps=(str(broken_sweep),), out=str(tmp_path_factory.mktemp("latency") / "lat.jsonl"),
                        precisions=("fp32", "bf16"), warmup=0, frames=2, points=str(cloud))
    seen = []
    table = run_latency(cfg, on_row=seen.append)
    return cfg, table, seen


def test_every_model_is_timed_in_each_precision_with_its_machine(timed):
    _, table, seen = timed
    assert len(seen) == 8 and len(table) == 8  # 4 models x 2 precisions
    ok = table[table["status"] == "ok"]
    assert sorted(zip(ok["index"], ok["precision"])) == sorted(itertools.product([0, 1, 2], ["bf16", "fp32"]))
    for _, row in ok.iterrows():
        stages = sum(row[k] for k in STAGE_MS)
        assert 0 < stages <= row["total_ms"] * 1.05  # the stages are inside the frame's time
        assert row["backbone_flops"] > 0 and row["backbone_acts"] > 0 and row["backbone_params"] > 0
    assert set(table["device_name"]) == {cpu_kind()} and set(table["points"]) == {4000}
    (run,) = set(table["run"])  # one run, stamped with the UTC time it started
    assert datetime.datetime.fromisoformat(run).utcoffset() == datetime.timedelta(0)


def test_a_model_that_cannot_be_built_gets_a_failed_row_and_the_rest_go_on(timed):
    _, table, _ = timed
    failed = table[table["status"] != "ok"]
    assert sorted(failed["index"]) == [3, 3] and failed["reason"].str.contains("groups|division").all()


def test_a_rerun_times_nothing_already_timed(timed):
    cfg, table, _ = timed
    lines = len(open(cfg.out).read().splitlines())
    seen = []
    with pytest.warns(MixedRunsWarning, match="2 timings join 6 of this device kind and precision from an earlier"):
        again = run_latency(cfg, on_row=seen.append)
    assert [r["index"] for r in seen] == [3, 3]  # the failed model is tried again, the timed ones are not
    assert len(open(cfg.out).read().splitlines()) == lines + 2 and len(again) == len(table)


def test_another_precision_in_the_same_table_is_its_own_run(timed, tmp_path):
    cfg, _, _ = timed
    fp32 = tmp_path / "fp32.jsonl"
    fp32.write_text("".join(line for line in open(cfg.out) if '"precision": "fp32"' in line))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedRunsWarning)
        table = run_latency(dataclasses.replace(cfg, out=str(fp32), precisions=("bf16",)))
    assert (table["precision"] == "bf16").sum() == 4


def test_pareto_front_is_the_brute_force_set_of_undominated_models():
    rng = np.random.default_rng(1)
    lat, err = rng.uniform(10, 100, 300).round(0), rng.uniform(0.3, 0.7, 300).round(2)  # rounded: ties
    front = set(pareto_front(lat, err).tolist())
    dominated = {i for i in range(300) for j in range(300)
                 if (lat[j] <= lat[i] and err[j] <= err[i]) and (lat[j] < lat[i] or err[j] < err[i])}
    undominated = set(range(300)) - dominated
    # ties in both keep one representative: the front is the undominated set with duplicates collapsed
    assert front <= undominated
    assert {(lat[i], err[i]) for i in front} == {(lat[i], err[i]) for i in undominated}


def test_correlations_against_scipy_and_numpy():
    rng = np.random.default_rng(2)
    flops = rng.uniform(1e9, 5e9, 50)
    table = pd.DataFrame({"backbone_flops": flops, "backbone_acts": rng.uniform(1e7, 5e7, 50),
                          "backbone_params": rng.uniform(1e5, 1e6, 50),
                          "total_ms": 100 * (flops / 1e9) ** 0.8 * rng.lognormal(0, 0.1, 50)})
    c = correlations(table).set_index("measure")
    assert c.loc["backbone_flops", "spearman"] == pytest.approx(stats.spearmanr(flops, table["total_ms"]).statistic)
    r = np.corrcoef(np.log(flops), np.log(table["total_ms"]))[0, 1]
    assert c.loc["backbone_flops", "r2_loglog"] == pytest.approx(r**2)
    assert c.loc["backbone_flops", "slope_loglog"] == pytest.approx(0.8, abs=0.1)


def test_budget_table_by_brute_force():
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"space": "regnetx", "index": range(40), "total_ms": rng.uniform(50, 150, 40),
                          "backbone_flops": rng.uniform(1e9, 3e9, 40), "error": rng.uniform(0.3, 0.6, 40)})
    row = budget_table(table, [100.0]).iloc[0]
    under = table[table["total_ms"] <= 100]
    assert row["best"] == f"regnetx-{under.loc[under['error'].idxmin(), 'index']}"
    admitted = table.nsmallest(len(under), "backbone_flops")
    assert row["best_by_flops"] == f"regnetx-{admitted.loc[admitted['error'].idxmin(), 'index']}"


def test_latency_report_of_the_tiny_sweep(timed, broken_sweep, capsys):
    cfg, table, _ = timed
    results = analyse(load_latency(cfg.out), {"tiny": load_results(broken_sweep)}, [1e6], permutations=200)
    assert {r["precision"] for r in results} == {"fp32", "bf16"} and all(r["models"] == 3 for r in results)
    assert main(["latency-report", str(broken_sweep), "--table", cfg.out, "--budget", "1e6"]) == 0
    text = capsys.readouterr().out
    assert "latency vs flops: Spearman" in text and "Pareto front" in text and "under 1e+06 ms (3 of 3 models)" in text
    assert "timed in one run (" in text
    mixed = load_latency(cfg.out)
    mixed.loc[mixed.index[mixed["status"] == "ok"][0], "run"] = "2026-01-01T00:00:00+00:00"
    assert "timed in 2 runs" in format_analysis(analyse(mixed, {"tiny": load_results(broken_sweep)}, [1e6], 200))
    assert "runs not recorded" in format_analysis(analyse(mixed.drop(columns="run"), {"tiny": load_results(
        broken_sweep)}, [1e6], 200))
    line = cli_error(capsys, ["latency", str(broken_sweep), "--precision", "int8", "--out", cfg.out])
    assert "precisions ['int8']: on cpu give some of fp32, bf16" in line


def test_the_shipped_latency_table_times_every_shipped_model_in_both_precisions_in_one_run():
    """docs/latency.md: the whole shipped study (224 + 224 finished models) timed in fp32 and bf16 by one command,
    so that no comparison mixes runs; read here from the files, not through the package's loaders."""
    from regnet_explore.analysis.latency import SHIPPED_LATENCY
    from regnet_explore.analysis.shipped import RESULTS_DIR

    rows = [json.loads(line) for line in
            (SHIPPED_LATENCY / "amd-epyc-family-25-model-17-avx512.jsonl").read_text().splitlines()]
    timed = {(r["space"], r["index"], r["precision"]) for r in rows if r["status"] == "ok"}
    for space in ("regnetx", "anynetxa"):
        lines = (RESULTS_DIR / space / "results.jsonl").read_text().splitlines()
        finished = {r["index"] for r in map(json.loads, lines) if r.get("status") == "ok"}
        assert len(finished) == 224
        for precision in ("fp32", "bf16"):
            assert {i for s, i, p in timed if s == space and p == precision} == finished, (space, precision)
    assert len(rows) == 2 * 2 * 224 and len({r["run"] for r in rows}) == 1
    assert {r["cpu"] for r in rows} == {"AMD EPYC (family 25 model 17, AVX512)"} and {r["threads"] for r in rows} == {2}
