"""Evaluation: perfect detections score 1, each perturbation raises its own TP error, and our wrappers report
exactly what the devkits' own entry points report on the same files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.data.dataset import LyftData, NuScenesData
from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.detections_file import write_detections
from regnet_explore.evaluation.global_boxes import oracle_detections
from regnet_explore.evaluation.lyft import (
    IOU_THRESHOLDS,
    average_precisions,
    evaluate_lyft,
    gt_records,
    lidar_reach,
    prediction_records,
    range_average_precisions,
    range_found_share,
    write_submission_csv,
)
from regnet_explore.evaluation.nuscenes import (
    attribute_name,
    evaluate_nuscenes,
    evaluate_submission,
    summarize,
    write_submission,
)

from .helpers import REAL_LYFT_TABLES, cli_error


def _perturbed(data: NuScenesData) -> dict:
    """Oracle detections with cars shifted 0.3 m, trucks 1.25x larger, barriers turned 0.4 rad, pedestrians
    without velocity: each class isolates one TP error."""
    label = {n: i for i, n in enumerate(data.class_names)}
    dets = {}
    for token, det in oracle_detections(data).items():
        b = det.boxes.clone()
        b[det.labels == label["car"], 0] += 0.3
        b[det.labels == label["truck"], 3:6] *= 1.25
        b[det.labels == label["barrier"], 6] += 0.4
        b[det.labels == label["pedestrian"], 7:9] = 0.0
        dets[token] = Detections(b, det.scores, det.labels, det.class_names)
    return dets


@pytest.fixture(scope="module")
def nus_results(nus_val, tmp_path_factory):
    out = tmp_path_factory.mktemp("nuseval")
    perfect = evaluate_nuscenes(nus_val, oracle_detections(nus_val), out / "perfect")
    perturbed = evaluate_nuscenes(nus_val, _perturbed(nus_val), out / "perturbed")
    return perfect, perturbed, out


def test_perfect_detections_score_one(nus_results):
    perfect, _, _ = nus_results
    assert perfect["mAP"] == pytest.approx(1.0)
    assert set(perfect["class_AP"]) == set(NuScenesData.class_names)
    assert all(ap == pytest.approx(1.0) for ap in perfect["class_AP"].values())
    assert perfect["mATE"] < 1e-4 and perfect["mASE"] < 1e-4 and perfect["mAOE"] < 1e-3 and perfect["mAAE"] == 0
    # Only the lidar-frame z component of velocity is lost (the sensor is tilted by ~1 degree).
    assert perfect["mAVE"] < 0.01
    assert perfect["NDS"] > 0.999


def test_each_perturbation_raises_its_own_error(nus_results):
    perfect, bad, _ = nus_results
    err = bad["class_tp_errors"]
    assert err["car"]["trans_err"] == pytest.approx(0.3, abs=1e-3)
    assert err["car"]["scale_err"] < 1e-3 and err["car"]["orient_err"] < 1e-3
    assert err["truck"]["scale_err"] == pytest.approx(1 - 1 / 1.25 ** 3, abs=1e-3)
    # Growing the box moves its centre up, and the ~1 degree sensor tilt turns that into a few mm in xy.
    assert err["truck"]["trans_err"] < 0.02
    assert err["barrier"]["orient_err"] == pytest.approx(0.4, abs=1e-3)
    assert err["pedestrian"]["vel_err"] > 0.3 > 100 * perfect["class_tp_errors"]["pedestrian"]["vel_err"]
    assert err["pedestrian"]["trans_err"] < 1e-3
    for metric in ("mATE", "mASE", "mAOE", "mAVE"):
        assert bad[metric] > perfect[metric] + 0.02
    assert bad["mAP"] == pytest.approx(1.0) and bad["NDS"] < perfect["NDS"]


def test_wrapper_equals_the_devkit_entry_point(nus_val, nus_results):
    _, bad, out = nus_results
    result = out / "perturbed" / "results_nusc.json"
    subprocess.run([sys.executable, "-m", "nuscenes.eval.detection.evaluate", str(result), "--output_dir",
                    str(out / "cli"), "--eval_set", "mini_val", "--dataroot", str(nus_val.dataroot), "--version",
                    "v1.0-mini", "--plot_examples", "0", "--render_curves", "0", "--verbose", "0"],
                   check=True, capture_output=True)
    cli = summarize(json.loads((out / "cli" / "metrics_summary.json").read_text()))
    assert json.dumps(cli, sort_keys=True) == json.dumps(bad, sort_keys=True)  # NaN-aware exact equality


def test_submission_format(nus_val, nus_results):
    _, _, out = nus_results
    sub = json.loads((out / "perfect" / "results_nusc.json").read_text())
    assert set(sub["results"]) == set(nus_val.tokens) and sub["meta"]["use_lidar"]
    box = next(b for boxes in sub["results"].values() for b in boxes if b["detection_name"] == "car")
    assert set(box) == {"sample_token", "translation", "size", "rotation", "velocity", "detection_name",
                        "detection_score", "attribute_name"}
    assert len(box["velocity"]) == 2 and box["size"][1] > box["size"][0]  # (w, l, h)


def test_attribute_rule():
    assert attribute_name("car", 1.0) == "vehicle.moving" and attribute_name("car", 0.1) == "vehicle.parked"
    assert attribute_name("bus", 0.1) == "vehicle.stopped" and attribute_name("bus", 3.0) == "vehicle.moving"
    assert attribute_name("bicycle", 1.0) == "cycle.with_rider"
    assert attribute_name("motorcycle", 0.0) == "cycle.without_rider"
    assert attribute_name("pedestrian", 0.0) == "pedestrian.standing"
    assert attribute_name("pedestrian", 1.0) == "pedestrian.moving"
    assert attribute_name("barrier", 2.0) == "" and attribute_name("traffic_cone", 0.0) == ""


def test_incomplete_inputs_are_refused_before_anything_is_written(nus_val, tmp_path):
    dets = oracle_detections(nus_val)
    path = write_submission(nus_val, dets, tmp_path / "full.json")
    sub = json.loads(path.read_text())
    del sub["results"][nus_val.tokens[0]]
    (tmp_path / "partial.json").write_text(json.dumps(sub))
    with pytest.raises(RegNetExploreError, match=r"partial.json: 1 samples .* missing"):
        evaluate_submission(nus_val, tmp_path / "partial.json", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    del dets[nus_val.tokens[1]]
    with pytest.raises(RegNetExploreError, match="1 of 6 samples"):
        write_submission(nus_val, dets, tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()


def test_lyft_range_bands_score_what_each_configuration_can_see(lyft_val):
    oracle = oracle_detections(lyft_val)
    reach = lidar_reach(lyft_val, gt_records(lyft_val))
    direct = np.concatenate([np.abs(lyft_val.sample(t, with_points=False).gt_boxes[:, :2]).max(1)
                             for t in lyft_val.tokens])
    np.testing.assert_allclose(reach, direct, atol=1e-4)  # global records back in the LiDAR frame
    bands = range_average_precisions(lyft_val, oracle)
    assert bands["80-100 m"]["objects"] == int((direct >= 80).sum()) > 0
    assert all(ap == 1.0 for band in bands.values() for ap in band["AP"].values())
    cut = {t: Detections(d.boxes[mask], d.scores[mask], d.labels[mask], d.class_names)  # what a +-80 m model sees
           for t, d in oracle.items() for mask in [d.boxes[:, :2].abs().amax(1) < 80]}
    bands = range_average_precisions(lyft_val, cut)
    assert set(bands["0-80 m"]["AP"].values()) == {1.0} and set(bands["80-100 m"]["AP"].values()) == {0.0}
    found = range_found_share(lyft_val, cut, class_name="car")
    assert found["0-80 m"]["found"] == 1.0 and found["80-100 m"]["found"] == 0.0
    shifted = {t: Detections(d.boxes + torch.tensor([1.5, 0, 0, 0, 0, 0, 0]), d.scores, d.labels, d.class_names)
               for t, d in oracle.items()}
    assert range_found_share(lyft_val, shifted)["0-80 m"]["found"] == 1.0  # within 2 m
    assert range_found_share(lyft_val, shifted, max_distance=1.0)["0-80 m"]["found"] == 0.0


def test_lyft_metric_survives_absurd_boxes(lyft_val):
    """The reference decoder is unbounded; a kilometre-long box made the SDK's orthogonality assert stop everything."""
    oracle = oracle_detections(lyft_val)
    token = lyft_val.tokens[0]
    det = oracle[token]
    huge = det.boxes[:2].clone()
    huge[:, 3:6] = torch.tensor([3.9e14, 2.6e16, 5.0])
    oracle[token] = Detections(torch.cat([det.boxes, huge]), torch.cat([det.scores, torch.full((2,), 0.01)]),
                               torch.cat([det.labels, det.labels[:2]]), det.class_names)
    assert len(prediction_records(lyft_val, oracle)) == sum(len(d) for d in oracle_detections(lyft_val).values())
    assert evaluate_lyft(lyft_val, oracle)["mAP"] == 1.0


def test_lyft_perfect_and_shifted(lyft_val, tmp_path):
    perfect = evaluate_lyft(lyft_val, oracle_detections(lyft_val))
    present = {r["name"] for r in gt_records(lyft_val)}  # one val scene: a rare class may be absent
    assert perfect["mAP"] == 1.0 and set(perfect["class_AP"]) == present and len(present) >= 6
    shifted = {}
    for token, det in oracle_detections(lyft_val).items():
        b = det.boxes.clone()
        b[:, 0] += 0.4
        shifted[token] = Detections(b, det.scores, det.labels, det.class_names)
    bad = evaluate_lyft(lyft_val, shifted)
    per_threshold = list(bad["threshold_mAP"].values())
    assert per_threshold[-1] == 0.0 < per_threshold[0] and bad["mAP"] < 1.0
    assert all(a >= b for a, b in zip(per_threshold, per_threshold[1:]))
    # The SDK's own entry point on the same GT and predictions, at two thresholds.
    (tmp_path / "gt.json").write_text(json.dumps(gt_records(lyft_val)))
    (tmp_path / "pred.json").write_text(json.dumps(prediction_records(lyft_val, shifted)))
    for iou in (0.5, 0.7):
        run = subprocess.run([sys.executable, "-m", "lyft_dataset_sdk.eval.detection.mAP_evaluation", "-g",
                              str(tmp_path / "gt.json"), "-p", str(tmp_path / "pred.json"), "-t", str(iou)],
                             check=True, capture_output=True, text=True)
        sdk = float(re.search(r"mean average precision = +([0-9.e-]+)", run.stdout).group(1))
        assert sdk == pytest.approx(bad["threshold_mAP"][iou], abs=1e-12)


def test_lyft_table_is_the_sdks_at_every_threshold(lyft_val):
    """Overlaps computed once for all thresholds give exactly the SDK's get_average_precisions at each: on boxes off
    by up to 1 m, tied scores, duplicates, boxes of the wrong class and a frame without predictions."""
    from lyft_dataset_sdk.eval.detection.mAP_evaluation import get_average_precisions

    rng = np.random.default_rng(0)
    dets = {}
    for i, (token, det) in enumerate(oracle_detections(lyft_val).items()):
        boxes = torch.cat([det.boxes, det.boxes[:3]])
        boxes[:, :2] += torch.from_numpy(rng.uniform(-1, 1, (len(boxes), 2)))
        scores = torch.from_numpy(rng.choice([0.2, 0.5, 0.9], len(boxes))).float()  # ties
        labels = torch.cat([det.labels, (det.labels[:3] + 1) % len(det.class_names)])
        found = Detections(boxes, scores, labels, det.class_names)
        dets[token] = found if i else found.above(1.1)  # the first frame: nothing found
    gt, predictions = gt_records(lyft_val), prediction_records(lyft_val, dets)
    names, table = average_precisions(gt, predictions)
    assert 0 < table.mean() < 1
    for k, iou in enumerate(IOU_THRESHOLDS):
        np.testing.assert_array_equal(table[:, k], get_average_precisions(gt, predictions, names, iou))


def test_lyft_submission_csv(lyft_val, tmp_path):
    dets = oracle_detections(lyft_val)
    path = write_submission_csv(lyft_val, dets, tmp_path / "sub.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "Id,PredictionString" and len(lines) == 1 + len(lyft_val)
    token, pred = lines[1].split(",")
    values = pred.split()
    assert token == lyft_val.tokens[0] and len(values) == 9 * len(dets[token])
    records = [r for r in prediction_records(lyft_val, dets) if r["sample_token"] == token]
    assert np.allclose([float(v) for v in values[1:4]], records[0]["translation"], atol=1e-3)
    assert values[8] == records[0]["name"]


def test_cli_evaluate_and_errors(lyft_val, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert main(["evaluate", "--format", "lyft", "--dataroot", str(lyft_val.dataroot), "--oracle", "--lyft-csv",
                 str(tmp_path / "s.csv")]) == 0
    assert '"mAP": 1.0' in capsys.readouterr().out and (tmp_path / "s.csv").exists()
    assert "none: no such directory" in cli_error(capsys, ["data", "info", "--format", "nuscenes", "--dataroot",
                                                           str(tmp_path / "none")])
    write_detections(tmp_path / "dets.jsonl", oracle_detections(lyft_val))
    assert main(["evaluate", "--format", "lyft", "--dataroot", str(lyft_val.dataroot), "--detections",
                 str(tmp_path / "dets.jsonl")]) == 0
    assert '"mAP": 1.0' in capsys.readouterr().out
    assert "for Lyft give --detections" in cli_error(capsys, ["evaluate", "--format", "lyft", "--dataroot", str(
        lyft_val.dataroot), "--results", str(tmp_path / "r.json")])
    assert not list((tmp_path / "tmp").iterdir())  # a Lyft evaluation, or a refused one, leaves no devkit folder


def test_index_path_is_not_in_a_downloaded_dataroot(tmp_path, monkeypatch):
    """A real download (here the real Lyft tables, copied) is never written to: its index goes to the user's cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = shutil.copytree(REAL_LYFT_TABLES, tmp_path / "lyft")
    before = sorted(root.rglob("*"))
    data = LyftData(root, "v1.01-train")
    assert len(data) == 1 and list(Path(tmp_path, "home", ".cache", "regnet_explore", "index").glob("*.sqlite"))
    assert sorted(root.rglob("*")) == before
