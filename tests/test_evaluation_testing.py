"""``regnet-explore test``: a split run as the demo runs it (same submission), scored by the devkit, resumable after
SIGKILL, bad input refused in one line; ``infer --sample`` loads a key frame with its sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.detections_file import done_tokens
from regnet_explore.evaluation.nuscenes import evaluate_submission
from regnet_explore.evaluation.predict import evaluate_model
from regnet_explore.evaluation.testing import STREAM, TestConfig, run_test
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.weights import shipped_checkpoint

from .helpers import cli_error

NUS = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
LYFT = "hv_pointpillars_regnet-400mf_fpn_sbn-all_2x8_2x_lyft-3d"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("test") / "full"
    result = run_test(TestConfig(NUS, str(shipped_checkpoint(NUS)), out=str(out), workers=2, batch_size=2,
                                 progress=False))
    return out, result


def test_test_gives_the_demo_submission_and_the_devkit_scores_it(full_run, tmp_path):
    out, result = full_run
    val = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), None, "mini_val")
    model = PointPillars.from_config(NUS, checkpoint=shipped_checkpoint(NUS))
    reference = evaluate_model(model, val, tmp_path)  # the demo's path: predict_split -> submission -> devkit
    assert result.frames == len(val) == len(done_tokens(out / STREAM))
    assert result.submission.read_bytes() == (tmp_path / "results_nusc.json").read_bytes()
    assert result.metrics["mAP"] == reference["mAP"] and result.metrics["NDS"] == reference["NDS"]
    assert result.metrics["class_AP"]["car"] > 0.5
    assert json.loads((out / "metrics.json").read_text())["NDS"] == result.metrics["NDS"]
    # the submission file as the devkit's DetectionEval reads it, scored afresh
    assert evaluate_submission(val, result.submission, tmp_path / "again")["mAP"] == reference["mAP"]


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regnet_explore.cli", "test", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_submission(full_run, tmp_path):
    out = tmp_path / "killed"
    args = [NUS, "--checkpoint", str(shipped_checkpoint(NUS)), "--out", str(out), "--workers", "0"]
    proc = _cli(*args)
    stream, deadline = out / STREAM, time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if stream.exists() and stream.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open(stream, "a") as f:
        f.write('{"token": "torn')  # a kill in the middle of a line
    done = done_tokens(stream)
    assert 2 <= len(done) < full_run[1].frames
    assert not (out / "results_nusc.json").exists()  # no half submission
    resumed = _cli(*args, "--resume")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert "NDS: " in stdout and "Per-class results:" in stdout
    frames = full_run[1].frames
    after = done_tokens(stream)
    assert after[:len(done)] == done and len(after) == len(set(after)) == frames  # kept, and not run again
    assert f"({frames - len(done)} run now" in stdout
    assert (out / "results_nusc.json").read_bytes() == full_run[1].submission.read_bytes()


def test_lyft_limit_writes_the_csv_and_scores_the_frames_run(tmp_path):
    result = run_test(TestConfig(LYFT, str(shipped_checkpoint(LYFT)), out=str(tmp_path), workers=0, limit=3,
                                 progress=False))
    assert result.frames == 3
    rows = result.submission.read_text().splitlines()
    assert rows[0] == "Id,PredictionString" and len(rows) == 4
    assert 0 <= result.metrics["mAP"] <= 1 and set(result.metrics["class_AP"]) >= {"car"}


@pytest.mark.parametrize("extra,message", [
    (["--checkpoint", "LYFT"], "pts_bbox_head.conv_cls.weight"),  # weights of another config
    (["--split", "train_of_nothing"], "train_of_nothing"),
    (["--version", "v1.0-trainval"], "v1.0-trainval"),
])
def test_bad_input_is_one_line_exit_2_and_no_submission(tmp_path, capsys, extra, message):
    extra = [str(shipped_checkpoint(LYFT)) if a == "LYFT" else a for a in extra]
    assert message in cli_error(capsys, ["test", NUS, "--out", str(tmp_path), "--workers", "0", *extra])
    assert not (tmp_path / "results_nusc.json").exists() and not (tmp_path / "metrics.json").exists()


def test_resume_with_other_settings_is_refused(full_run, capsys):
    out, _ = full_run
    err = cli_error(capsys, ["test", NUS, "--out", str(out), "--resume", "--score-thr", "0.3"])
    assert "other settings" in err and "score_thr" in err


def test_infer_on_a_sample_loads_its_sweeps(tmp_path, capsys):
    root = ensure_default_dataset("nuscenes")
    data = open_dataset("nuscenes", root, None, "mini_val")
    token = data.tokens[1]  # a scene's second key frame: sweeps before it
    points = data.sample(token).network_points()
    assert len(np.unique(points[:, 3])) == 11  # the key frame and the 10 sweeps before it (time lags)
    out = tmp_path / "pred.json"
    assert main(["infer", NUS, "--checkpoint", str(shipped_checkpoint(NUS)), "--sample", token,
                 "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    model = PointPillars.from_config(NUS, checkpoint=shipped_checkpoint(NUS))
    expected = model.predict(points)
    assert got["sample"] == token and got["num_points"] == len(points)
    torch.testing.assert_close(torch.tensor(got["boxes"]), expected.boxes, rtol=0, atol=1e-6)
    single = tmp_path / "one.json"
    assert main(["infer", NUS, "--sample", token, "--sweeps", "0", "--out", str(single)]) == 0
    assert json.loads(single.read_text())["num_points"] == int((points[:, 3] == 0).sum())  # the key frame alone
    assert "no-such-token" in cli_error(capsys, ["infer", NUS, "--sample", "no-such-token"])


def test_done_tokens_cuts_a_torn_line(tmp_path):
    path = Path(tmp_path) / STREAM
    path.write_text('{"token": "a"}\n{"token": "b"}\n{"tok')
    assert done_tokens(path) == ["a", "b"] and path.read_text().endswith("}\n")
    path.write_text('{"token": "a"}\nnot json\n')
    with pytest.raises(RegNetExploreError, match="not a detections stream"):
        done_tokens(path)


def test_scoring_leaves_nothing_on_stdout_or_stderr(full_run, tmp_path, capfd):
    """The devkit's table and its tqdm bar stay out of logs and notebook stderr boxes unless verbose."""
    val = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), None, "mini_val")
    capfd.readouterr()
    evaluate_submission(val, full_run[1].submission, tmp_path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
