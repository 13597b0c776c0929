"""Design-space sweeps on the small synthetic nuScenes set: the table, resuming after SIGKILL, torn rows, pinned
settings, shards, and 2 workers equal to 1."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from regnet_explore.analysis import sweep
from regnet_explore.analysis.sampling import BackboneInput
from regnet_explore.analysis.sweep import (
    PROXY,
    SweepConfig,
    base_detector,
    complexity_probe,
    iteration_plan,
    load_results,
    normalize,
    read_settings,
    run_sweep,
)
from regnet_explore.analysis.sweep import model as sweep_model
from regnet_explore.cli import build_parser, main
from regnet_explore.commands.analysis import _sweep_configs
from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.window import crop_config
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model, flat_metrics
from regnet_explore.machine import cpu_kind
from regnet_explore.train.curves import read_log
from regnet_explore.train.engine import TrainConfig, TrainingSet

from .helpers import TINY_SWEEP, cli_error, free_port, tiny_sweep_args

ROW_COLUMNS = ("space", "index", "stage_widths", "stage_depths", "flops", "params_count", "acts", "mAP", "NDS",
               "AP_car", "error", "loss", "iterations", "train_s", "eval_s", "wall_s", "samples_per_s", "worker",
               "device")
COMPARED = ("flops", "params_count", "mAP", "NDS", "AP_car", "error", "loss", "iterations")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the rows compared are trained on one thread everywhere


def _copy(sweep_dir: Path, dst: Path) -> Path:
    shutil.copytree(sweep_dir, dst, ignore=shutil.ignore_patterns("models"))
    return dst


def _assert_same_rows(a, b) -> None:
    assert list(a["index"]) == list(b["index"])
    for col in COMPARED:
        assert a[col].tolist() == pytest.approx(b[col].tolist(), rel=1e-5, abs=1e-6), col


def test_iteration_plan_spreads_the_budget_over_few_epochs():
    assert iteration_plan(4, 6, 2) == (2, 2)
    assert iteration_plan(2, 6, 2) == (1, 2)
    epochs, per_epoch = iteration_plan(400, 6, 2)
    assert per_epoch <= 3 and 400 <= epochs * per_epoch < 400 + epochs


def test_sweep_table_has_one_row_per_model(tiny_sweep):
    table = load_results(tiny_sweep)
    assert list(table["index"]) == [0, 1, 2] and set(table["space"]) == {"regnetx"}
    for col in ROW_COLUMNS:
        assert col in table.columns, col
    assert (table["flops"] <= 0.15e9).all() and (table["iterations"] == 4).all()
    assert table["error"].tolist() == pytest.approx((1 - table["mAP"]).tolist())
    assert len((tiny_sweep / "results.jsonl").read_text().splitlines()) == 3
    pinned = json.loads((tiny_sweep / "sweep.json").read_text())
    assert pinned["budget"] == 4 and pinned["detector"].startswith("hv_pointpillars_regnet-400mf_fpn")
    for i in range(3):  # the work dirs keep the last checkpoint only
        assert sorted(p.name for p in (tiny_sweep / "models" / f"regnetx-{i}").glob("*.pth")) == ["latest.pth"]


def test_torn_last_line_is_ignored_then_cut(tiny_sweep, nus_root, tmp_path):
    out = _copy(tiny_sweep, tmp_path / "torn")
    with open(out / "results.jsonl", "a") as f:
        f.write('{"space": "regnetx", "index": 3, "mAP": 0.')  # a row cut by a kill
    assert list(load_results(out)["index"]) == [0, 1, 2]
    run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(out)))  # nothing left to train
    assert (out / "results.jsonl").read_text() == (tiny_sweep / "results.jsonl").read_text()


def test_shards_merge_and_skip_each_others_models(tiny_sweep, nus_root, tmp_path):
    out = _copy(tiny_sweep, tmp_path / "shards")
    rows = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").unlink()
    for i in range(2):
        (out / f"results.shard-{i}-of-2.jsonl").write_text("".join(rows[i::2]))
    _assert_same_rows(load_results(out), load_results(tiny_sweep))
    table = run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(out), shard=(1, 2)))
    assert table.attrs["trained"] == 0 and len(table) == 3


def test_other_settings_in_the_same_directory_are_refused(tiny_sweep, nus_root, capsys):
    before = (tiny_sweep / "sweep.json").read_text()
    assert "budget 4 there, 5 now" in cli_error(capsys, tiny_sweep_args(nus_root, tiny_sweep, 3, budget=5))
    assert (tiny_sweep / "sweep.json").read_text() == before


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_sigkill_then_rerun_skips_finished_and_resumes_the_half_trained(tiny_sweep, nus_root, tmp_path, capsys):
    out = tmp_path / "killed"
    args = tiny_sweep_args(nus_root, out, 2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen([sys.executable, "-m", "regnet_explore.cli", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    results, half = out / "results.jsonl", out / "models" / "regnetx-1" / "latest.pth"
    deadline = time.time() + 300
    while not (results.exists() and results.read_text().count("\n") and half.exists()):
        assert victim.poll() is None and time.time() < deadline, victim.stdout.read()
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # model 0 written, model 1 after its first epoch
    victim.wait()
    assert len(results.read_text().splitlines()) == 1, "the sweep finished before it could be killed"
    finished = _mtimes(out / "models" / "regnetx-0")

    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len([line for line in printed if line.startswith("[")]) == 1 and "model    1" in printed[0]
    assert "2 models" in printed[-2] and "best error" in printed[-1]
    assert _mtimes(out / "models" / "regnetx-0") == finished
    log = read_log(out / "models" / "regnetx-1" / "train.log.json")
    assert [r["epoch"] for r in log if r.get("mode") == "train"] == [1, 2]  # epoch 1 not trained again
    table = load_results(out)
    _assert_same_rows(table, load_results(tiny_sweep).iloc[:2])  # as if never killed


def test_two_workers_give_the_rows_of_one(tiny_sweep, nus_root, tmp_path):
    table = run_sweep(SweepConfig(**TINY_SWEEP, samples=2, data=str(nus_root), out=str(tmp_path / "pair"), workers=2))
    _assert_same_rows(table, load_results(tiny_sweep).iloc[:2])
    assert set(table["worker"]) <= {0, 1}


@pytest.mark.slow
def test_torchrun_job_of_one_model_gives_its_row(tiny_sweep, nus_root, tmp_path):
    out = tmp_path / "torchrun"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port())]
    # 2 processes of batch 1: the global batch of the tiny sweep; shard 1/3 of 3 models is model 1 alone
    args = [*tiny_sweep_args(nus_root, out, 3, batch=1), "--shard", "1/3"]
    job = subprocess.run([*launcher, "-m", "regnet_explore.cli", *args],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout + job.stderr
    assert job.stdout.count("best error") == 1  # rank 0 reports
    table = load_results(out)
    assert (out / "results.shard-1-of-3.jsonl").exists()
    _assert_same_rows(table, load_results(tiny_sweep).iloc[[1]].reset_index(drop=True))


def test_a_model_of_two_runs_is_the_mean_of_the_one_run_sweeps_of_its_seeds(tiny_sweep, nus_root, tmp_path, capsys):
    # run r of training seed t is the 1-run sweep of seed t * runs + r: here seeds 0 (tiny_sweep's rows) and 1
    out = tmp_path / "two-runs"
    table = run_sweep(SweepConfig(**TINY_SWEEP, samples=1, runs=2, data=str(nus_root), out=str(out)))
    seed1 = run_sweep(SweepConfig(**TINY_SWEEP, samples=1, train_seed=1, data=str(nus_root),
                                  out=str(tmp_path / "seed-1")))
    runs = [load_results(tiny_sweep).iloc[:1], seed1]
    for i, row in table.iterrows():
        assert row["runs"] == 2
        assert row["run_errors"] == pytest.approx([r.iloc[i]["error"] for r in runs], rel=1e-5, abs=1e-6)
        assert row["error"] == pytest.approx(np.mean(row["run_errors"]))
        for col in ("mAP", "loss"):  # the tiny runs' errors hardly depend on the seed, their losses do
            assert row[col] == pytest.approx(np.mean([r.iloc[i][col] for r in runs]), rel=1e-5, abs=1e-6), col
        assert row["train_s"] + row["eval_s"] == pytest.approx(row["wall_s"])
        assert row["flops"] == runs[0].iloc[i]["flops"] and row["wa"] == runs[0].iloc[i]["wa"]
    for r in range(2):
        assert (out / "models" / "regnetx-0" / f"run-{r}" / "latest.pth").exists()

    # a rerun after the table was lost scores from each run's row.json: nothing is trained or evaluated again
    before = _mtimes(out / "models")
    (out / "results.jsonl").unlink()
    again = run_sweep(SweepConfig(**TINY_SWEEP, samples=1, runs=2, data=str(nus_root), out=str(out)))
    assert _mtimes(out / "models") == before
    _assert_same_rows(again, table)
    assert (again["resumed_from"] == again["iterations"]).all()

    # the directory pins the number of runs; one made before the setting existed holds one run a model
    assert "runs 2 there, 1 now" in cli_error(capsys, tiny_sweep_args(nus_root, out, 1))
    old = _copy(tiny_sweep, tmp_path / "old")
    pinned = json.loads((old / "sweep.json").read_text())
    del pinned["runs"]
    (old / "sweep.json").write_text(json.dumps(pinned))
    assert run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(old))).attrs["trained"] == 0
    assert "runs 1 there, 2 now" in cli_error(capsys, [*tiny_sweep_args(nus_root, old, 3), "--runs", "2"])


def test_a_sweep_json_of_the_flat_layout_is_read_and_pinned_as_its_recipe(tiny_sweep, nus_root, tmp_path, capsys):
    # before the recipe was a TrainConfig, sweep.json held its fields at the top level, warm-up null for a tenth of
    # the budget; such a directory continues with the same recipe and refuses another
    old = _copy(tiny_sweep, tmp_path / "flat")
    pinned = json.loads((old / "sweep.json").read_text())
    recipe = pinned.pop("train")
    flat = {k: recipe[k] for k in ("batch_size", "lr", "lr_schedule", "crop", "crop_placement", "sweeps", "pretrained")}
    (old / "sweep.json").write_text(json.dumps({**pinned, **flat, "warmup_iters": None}))
    assert read_settings(old) == read_settings(tiny_sweep)
    assert run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(old))).attrs["trained"] == 0
    assert "train.lr None there, 0.01 now" in cli_error(capsys, [*tiny_sweep_args(nus_root, old, 3), "--lr", "0.01"])
    assert "train.warmup_iters 1 there, 3 now" in cli_error(capsys, [*tiny_sweep_args(nus_root, old, 3),
                                                                     "--warmup-iters", "3"])


@pytest.mark.parametrize("field, value", [("epochs", 3), ("work_dir", "elsewhere"), ("seed", 5), ("device", "cpu"),
                                          ("data", "/d")])
def test_the_recipe_may_not_set_what_the_sweep_sets_for_each_model(field, value):
    with pytest.raises(RegNetExploreError, match=f"train.{field}: the sweep sets it for each model"):
        normalize(SweepConfig(**{**TINY_SWEEP, "train": TrainConfig(**{field: value})}))


def test_report_summarises_the_table(tiny_sweep, capsys):
    assert main(["sweep-report", str(tiny_sweep)]) == 0
    text = capsys.readouterr().out
    assert "3 models (regnetx 3)" in text and "regnetx-0: error" in text


# --- failures -------------------------------------------------------------------------------------------------


def test_a_failing_model_gets_a_failed_row_and_the_sweep_goes_on(tiny_sweep, nus_root, tmp_path, monkeypatch, capsys):
    real = sweep_model._train_and_score

    def flaky(cfg, sample, device, worker):
        if sample.index == 1:
            raise RuntimeError("out of memory (simulated)\nsecond line")
        return real(cfg, sample, device, worker)

    out = tmp_path / "failing"
    monkeypatch.setattr(sweep_model, "_train_and_score", flaky)
    table = run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(out)))
    assert list(table["index"]) == [0, 2] and table.attrs["failed"] == 1
    everything = load_results(out, failed=True)
    failed = everything[everything["index"] == 1].iloc[0]
    assert failed["status"] == "failed" and failed["reason"] == "RuntimeError: out of memory (simulated)"
    _assert_same_rows(table, load_results(tiny_sweep).iloc[[0, 2]].reset_index(drop=True))

    # a rerun leaves the failed model alone; --retry-failed trains it (now without the fault) and its row wins
    assert main(tiny_sweep_args(nus_root, out, 3)) == 0
    assert "1 failed (--retry-failed" in capsys.readouterr().out
    monkeypatch.setattr(sweep_model, "_train_and_score", real)
    assert main([*tiny_sweep_args(nus_root, out, 3), "--retry-failed"]) == 0
    assert "failed" not in capsys.readouterr().out.splitlines()[-2]
    _assert_same_rows(load_results(out), load_results(tiny_sweep))
    assert len(load_results(out, failed=True)) == 3 and len((out / "results.jsonl").read_text().splitlines()) == 4
    assert main(["sweep-report", str(out)]) == 0
    assert "failed" not in capsys.readouterr().out


def test_report_counts_failed_models(tiny_sweep, tmp_path, capsys):
    out = _copy(tiny_sweep, tmp_path / "report")
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    failed = {k: row[k] for k in ("space", "stage_widths", "stage_depths", "flops", "params_count")}
    with open(out / "results.jsonl", "a") as f:
        row = {**failed, "index": 7, "status": "failed", "reason": "TrainingDiverged: loss is nan"}
        f.write(json.dumps(row) + "\n")
    assert main(["sweep-report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 models (regnetx 3), 1 failed" in text and "regnetx-7: TrainingDiverged: loss is nan" in text


# --- the proxy preset and the detector around the backbones -----------------------------------------------------


def test_proxy_preset_fills_what_the_command_leaves_unset():
    def parse(*extra):
        cfgs = _sweep_configs(build_parser().parse_args(["sweep", "regnetx", "--samples", "3", "--out", "x", *extra]))
        assert len(cfgs) == 1 and cfgs[0].space == "regnetx" and cfgs[0].out == "x"
        return cfgs[0]

    cfg = parse("--proxy")
    for key, value in PROXY.items():
        assert getattr(cfg, key) == value, key
    cfg = parse("--proxy", "--budget", "8", "--crop", "8", "--flops-max", "0.15", "--data", "/d")
    assert (cfg.budget, cfg.train.crop, cfg.flops, cfg.data, cfg.synthetic) == (8, 8.0, (0.0, 0.15e9), "/d", None)
    assert cfg.classes == ("car",) and cfg.train == dataclasses.replace(PROXY["train"], crop=8.0)
    with pytest.raises(Exception, match="--budget is required"):
        parse()


def test_complexity_probe_is_the_backbone_input_on_the_training_grid():
    cfg = SweepConfig(**PROXY)
    probe = complexity_probe(cfg)
    assert probe == BackboneInput.of_detector(crop_config(get_config(cfg.detector), 16.0))
    assert (probe.height, probe.width, probe.in_channels, probe.stem_channels) == (128, 128, 64, 64)
    assert (probe.stem, probe.strides, probe.num_classes) == (False, (1, 2, 2, 2), 0)


def test_base_detector_needs_an_fpn_for_neck_channels_and_a_regnet_for_encoder_channels():
    with pytest.raises(RegNetExploreError, match="has a SECFPN neck, not an FPN"):
        base_detector(SweepConfig(detector="regnet-400mf-secfpn-nus", neck_channels=64))
    with pytest.raises(RegNetExploreError, match="the last must be the backbone's input width 64"):
        base_detector(SweepConfig(encoder_channels=(32,)))
    with pytest.raises(RegNetExploreError, match="has a SECOND backbone"):
        base_detector(SweepConfig(detector="fpn-nus", encoder_channels=(64,)))


def test_car_only_detector_trains_on_cars_and_scores_them(nus_root, tmp_path):
    cfg = normalize(SweepConfig(**TINY_SWEEP, samples=1, data=str(nus_root), out=str(tmp_path / "car"), classes=["car"],
                                neck_channels=32, encoder_channels=(64,), max_points=20, metric="AP_car"))
    det = base_detector(cfg)
    assert det.class_names == ("car",) and det.neck.out_channels == 32 and det.max_points == 20
    data = open_dataset("nuscenes", nus_root, None, "mini_train", sweeps=1)
    samples = TrainingSet(data, det, 0, None)
    for i in range(len(data)):
        _, boxes, labels = samples[i]
        cars = int((data.sample(i).gt_labels == data.class_names.index("car")).sum())
        assert len(boxes) == len(labels) == cars and (labels == 0).all()
    table = run_sweep(cfg)
    row = table.iloc[0]
    assert row["status"] == "ok" and row["error"] == pytest.approx(1 - row["AP_car"])
    assert not [c for c in table.columns if c.startswith("AP_") and not c.startswith("AP_car")]
    by_threshold = [f"AP_car@{t:g}" for t in (0.5, 1.0, 2.0, 4.0)]
    assert table[by_threshold].mean(axis=1).to_numpy() == pytest.approx(table["AP_car"].to_numpy())
    with pytest.raises(Exception, match="metric 'AP_truck' is not reported"):
        normalize(SweepConfig(**TINY_SWEEP, classes=("car",), metric="AP_truck"))
    with pytest.raises(Exception, match="non-empty subset"):
        normalize(SweepConfig(**TINY_SWEEP, classes=("cat",)))


def test_val_synthetic_scores_on_the_other_sets_validation_split(tmp_path):
    """Trained on the default synthetic set, scored on another synthetic set's validation split."""
    cfg = SweepConfig(**TINY_SWEEP, samples=1, val_synthetic=(4, 3), out=str(tmp_path / "val"))
    row = run_sweep(cfg).iloc[0]
    assert row["resumed_from"] == 0
    scoring = Path(sweep.val_root(normalize(cfg)))
    assert scoring.name == "nuscenes-4x3" and scoring != Path(sweep.data_root(normalize(cfg)))
    sample = sweep.sample_models(normalize(cfg)).samples[0]
    det = sweep.sweep_detector(normalize(cfg), sample)
    model = PointPillars.from_config(sweep_model.training_geometry(cfg, det),
                                     tmp_path / "val" / "models" / "regnetx-0" / "latest.pth")
    val = open_dataset("nuscenes", scoring, None, "mini_val", sweeps=1)
    expected = flat_metrics(evaluate_model(model, val, tmp_path / "eval", class_range=cfg.train.crop))
    assert row["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    with pytest.raises(RegNetExploreError, match="not both"):
        normalize(SweepConfig(**TINY_SWEEP, data="/d", val_synthetic=(4, 3)))


FAST = ["--permutations", "500", "--simulations", "300"]


def test_sweep_report_shipped_prints_the_planned_analysis_and_json_the_same(capsys):
    import statsmodels.formula.api as smf
    from scipy import stats

    from regnet_explore.analysis.shipped import RESULTS_DIR, SHIPPED_CPU, shipped_quality

    assert main(["sweep-report", "--shipped", *FAST]) == 0
    text = capsys.readouterr().out
    assert main(["sweep-report", "--shipped", "--json", *FAST]) == 0
    whole = json.loads(capsys.readouterr().out)
    result = whole["comparison"]
    tables = {s: load_results(RESULTS_DIR / s) for s in ("regnetx", "anynetxa")}
    a, b = tables["regnetx"], tables["anynetxa"]
    for name, t in tables.items():
        assert f"  {name}: n = {len(t)}, " in text and result["spaces"][name]["n"] == len(t)
    both = pd.concat([a.assign(space_b=0), b.assign(space_b=1)], ignore_index=True)
    fit = smf.ols("error ~ space_b + np.log(flops) + np.log(acts)", both).fit(cov_type="HC3")
    low, high = fit.conf_int().loc["space_b"]
    adjusted = result["primary"]["adjusted_shift"]
    assert adjusted["estimate"] == pytest.approx(fit.params["space_b"])
    assert f"shift {fit.params['space_b']:+.3f} [{low:+.3f}, {high:+.3f}] (95%, HC3), p = " \
           f"{fit.pvalues['space_b']:.3g}, permutation p = {adjusted['p_permutation']:.3g}" in text
    assert "equivalence at +-0.025: " in text and result["primary"]["equivalence"]["margin"] == 0.025
    ks = stats.ks_2samp(a["error"], b["error"], method="exact")
    assert f"KS D = {ks.statistic:.3f}, exact p = {ks.pvalue:.3g}" in text
    assert "Hodges-Lehmann shift " in text and "Mann-Whitney p = " in text
    power = result["power"]
    assert power["noise"] == shipped_quality()["seed_std"]
    assert f"adjusted {power['detectable_shift']['adjusted']:.3f}, Mann-Whitney " in text
    trends = {r["param"]: r for r in result["trends"]["regnetx"]}
    assert trends["w0"]["rho"] == pytest.approx(stats.spearmanr(a["w0"], a["error"]).statistic)
    assert "regnetx w0: rho " in text and "anynetxa e_fit: rho " in text and "verdict: " in text
    # the rank fidelity as planned (its figures: test_analysis_fidelity.py), in the text and the JSON
    assert "rank fidelity: 24 RegNetX networks, proxy error vs 1 - AP_car@0.5 after 4x the budget: " in text
    assert whole["rank_fidelity"]["models"] == 24 and whole["rank_fidelity"]["seeds"] == 1
    # then the amendment's figure, the reference each network's mean of 3 training seeds
    assert "proxy error vs 1 - AP_car@0.5 (the mean of 3 training seeds) after 4x the budget: " in text
    assert text.index("(the mean of 3 training seeds)") > text.index("rank fidelity: 24 RegNetX networks")
    seed_mean = whole["rank_fidelity_seed_mean"]
    assert seed_mean["models"] == 24 and seed_mean["seeds"] == 3 and seed_mean["noise_dof"] == 48
    # two directories: the same analysis when told the CPU kind of the rows that record none (--shipped knows it),
    # without the shipped noise figure; not told, those rows are a kind of their own beside the new rows' kind
    dirs = [str(RESULTS_DIR / "regnetx"), str(RESULTS_DIR / "anynetxa")]
    assert main(["sweep-report", *dirs, "--cpu", SHIPPED_CPU, "--json", *FAST]) == 0
    plain = json.loads(capsys.readouterr().out)["comparison"]
    assert plain["primary"] == result["primary"] and plain["power"]["noise"] == 0.0
    assert main(["sweep-report", *dirs, "--json", *FAST]) == 0
    untold = json.loads(capsys.readouterr().out)["comparison"]
    recorded = "cpu" in a and a["cpu"].notna().any()
    assert untold["cpu_adjusted"] == bool(recorded) and ("unrecorded" in untold["cpu_kinds"]) == bool(recorded)
    assert "one sweep directory, two to compare, or --shipped" in cli_error(capsys, ["sweep-report"])
    line = cli_error(capsys, ["sweep-report", "--shipped", "--margin", "-1"])
    assert "argument --margin: '-1' is not a number > 0" in line


def test_two_spaces_train_as_one_alternating_stream(tiny_sweep, nus_root, tmp_path, capsys):
    args = tiny_sweep_args(nus_root, tmp_path / "both", 2)
    args.insert(2, "anynetxa")  # sweep regnetx anynetxa ...
    assert main(args) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in printed] == ["regnetx", "anynetxa", "regnetx", "anynetxa"]
    regnetx = load_results(tmp_path / "both" / "regnetx")
    _assert_same_rows(regnetx, load_results(tiny_sweep).iloc[:2])  # as if trained alone
    anynetxa = load_results(tmp_path / "both" / "anynetxa")
    assert list(anynetxa["index"]) == [0, 1] and set(anynetxa["space"]) == {"anynetxa"}
    for table in (regnetx, anynetxa):
        assert set(table["cpu"]) == {cpu_kind()} and set(table["torch"]) == {torch.__version__}
        assert set(table["threads"]) == {1} and set(table["cpu_cores"]) == {os.cpu_count()}


def test_sweeps_trained_together_must_differ_in_space_and_share_the_runner(nus_root, tmp_path):
    a = SweepConfig(**TINY_SWEEP, samples=1, data=str(nus_root), out=str(tmp_path / "a"))
    with pytest.raises(RegNetExploreError, match="different spaces"):
        sweep.run_sweeps([a, a])
    b = SweepConfig(**{**TINY_SWEEP, "space": "anynetxa"}, samples=1, data=str(nus_root), out=str(tmp_path / "b"),
                    workers=2)
    with pytest.raises(RegNetExploreError, match="must share workers"):
        sweep.run_sweeps([a, b])
    assert sweep.interleave([[1, 2, 3], ["a"], [10, 20]]) == [1, "a", 10, 2, 20, 3]


def test_rows_of_another_cpu_kind_are_warned_about_in_one_line(tiny_sweep, nus_root, tmp_path, capsys):
    same = _copy(tiny_sweep, tmp_path / "same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(same)))
    other = _copy(tiny_sweep, tmp_path / "other")
    rows = [json.loads(line) for line in (other / "results.jsonl").read_text().splitlines()]
    text = "".join(json.dumps({**row, "device_name": "Some CPU (family 6 model 1, no AVX512)"}) + "\n"
                   for row in rows)
    (other / "results.jsonl").write_text(text)
    with pytest.warns(sweep.MixedCPUWarning, match="computed on Some CPU"):
        run_sweep(SweepConfig(**TINY_SWEEP, samples=3, data=str(nus_root), out=str(other)))
    assert main(tiny_sweep_args(nus_root, other, 3)) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("regnet-explore sweep: warning: ") and cpu_kind() in err[0]


def test_the_shipped_study_holds_the_planned_extension():
    """docs/sweeps.md's plan: at least 224 finished models a space, every row from index 112 on with its machine,
    both spaces trained on the same CPU kinds in equal numbers."""
    from regnet_explore.analysis.shipped import shipped_results

    kinds = {}
    for space in ("regnetx", "anynetxa"):
        table = shipped_results(space, failed=True)
        assert (table["status"] == "ok").sum() >= 224 and list(table["index"]) == list(range(len(table)))
        new = table[table["index"] >= 112]
        assert new[["cpu", "cpu_cores", "threads", "torch"]].notna().all().all()
        kinds[space] = new["cpu"].value_counts().to_dict()
    assert kinds["regnetx"] == kinds["anynetxa"]
