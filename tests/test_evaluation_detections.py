"""One detections type through evaluation: from_arrays validates, predict_split maps labels to the dataset's
classes, the file reader converts at the boundary, and the submission holds the float32 values exactly."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from nuscenes.eval.common.loaders import load_prediction
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.detections_file import read_detections, write_detections
from regnet_explore.evaluation.global_boxes import oracle_detections
from regnet_explore.evaluation.lyft import prediction_records
from regnet_explore.evaluation.nuscenes import to_submission, write_submission
from regnet_explore.evaluation.predict import predict_split

CLASSES = ("car", "truck", "pedestrian")


def _random_arrays(seed: int, k: int, dim: int = 9, n_classes: int = 10) -> tuple[np.ndarray, ...]:
    """float32 boxes and scores near the ego vehicle (inside every class range), int64 labels."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(-20, 20, (k, 2)), rng.uniform(-2, 0, (k, 1)), rng.uniform(0.5, 5, (k, 3)),
                            rng.uniform(-3, 3, (k, 1)), rng.uniform(-2, 2, (k, dim - 7))], 1).astype(np.float32)
    return boxes, rng.random(k).astype(np.float32), rng.integers(0, n_classes, k)


# --- Detections.from_arrays ---------------------------------------------------------------------------------------


def test_from_arrays_keeps_values_and_precision():
    boxes, scores, labels = _random_arrays(0, 5, dim=7, n_classes=3)
    det = Detections.from_arrays(boxes, scores, labels, CLASSES)
    assert det.boxes.dtype == torch.float32 and det.labels.dtype == torch.int64 and det.class_names == CLASSES
    assert np.array_equal(det.numpy()["boxes"], boxes.astype(np.float64))
    assert np.array_equal(det.numpy()["scores"], scores.astype(np.float64))
    assert det.names == [CLASSES[i] for i in labels]
    scores64 = 1.0 - 1e-6 * np.arange(5)  # the oracle's scores: float32 would round them
    assert np.array_equal(Detections.from_arrays(boxes, scores64, labels, CLASSES).numpy()["scores"], scores64)
    gt = Detections.from_arrays(boxes.tolist(), None, labels.tolist(), CLASSES)  # lists are float64, as numpy reads
    assert gt.scores.tolist() == [1.0] * 5 and np.array_equal(gt.numpy()["boxes"], np.asarray(boxes.tolist()))
    empty = Detections.from_arrays([], [], [], CLASSES)
    assert empty.boxes.shape == (0, 7) and len(empty) == 0


@pytest.mark.parametrize(("boxes", "scores", "labels", "match"), [
    (np.zeros((3, 8)), np.zeros(3), np.zeros(3), r"boxes \(3, 8\); need \(K, 7 or 9\)"),
    (np.zeros(7), np.zeros(1), np.zeros(1), r"boxes \(7,\); need \(K, 7 or 9\)"),
    (np.zeros((1, 3, 7)), np.zeros(3), np.zeros(3), r"boxes \(1, 3, 7\)"),
    (np.zeros((3, 7)), np.zeros(2), np.zeros(3), r"3 boxes, scores \(2,\)"),
    (np.zeros((3, 9)), np.zeros(3), np.zeros(4), r"labels \(4,\)"),
    (np.zeros((2, 7)), np.zeros(2), np.array([0, 3]), r"labels must lie in \[0, 3\).*got 0 to 3"),
    (np.zeros((2, 7)), np.zeros(2), np.array([-1, 0]), r"labels must lie in \[0, 3\)"),
    (np.zeros((2, 7)), np.zeros(2), np.array(["car", "truck"]), "must be numeric arrays"),
    ([[0.0] * 7, [0.0] * 6], np.zeros(2), np.zeros(2), "must be numeric arrays"),
])
def test_from_arrays_rejects(boxes, scores, labels, match):
    with pytest.raises(RegNetExploreError, match=match):
        Detections.from_arrays(boxes, scores, labels, CLASSES)


def test_selection_methods():
    det = Detections.from_arrays(np.zeros((4, 7)), [0.1, 0.5, 0.7, 0.2], [0, 1, 2, 0], CLASSES)
    assert det.above(0.5).scores.tolist() == pytest.approx([0.5, 0.7])
    assert det.of_classes({"car", "pedestrian"}).names == ["car", "pedestrian", "car"]
    assert det.cpu().boxes.device.type == "cpu"
    assert det.to_dict()["names"] == ["car", "truck", "pedestrian", "car"]


# --- predict_split ------------------------------------------------------------------------------------------------


class _FakeDetector:
    """predict() -> Detections over the detector's own classes (not the dataset's order)."""

    def __init__(self, class_names: tuple[str, ...]):
        self.cfg = types.SimpleNamespace(class_names=class_names, name="fake")

    def predict(self, points, score_thr=None) -> Detections | list[Detections]:
        if isinstance(points, list):  # as PointPillars.predict: a list of clouds gives a list
            return [self.predict(p, score_thr) for p in points]
        boxes, scores, labels = _random_arrays(len(points), 6, n_classes=len(self.cfg.class_names))
        return Detections(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels),
                          self.cfg.class_names)


def test_predict_split_labels_index_the_datasets_classes(nus_val):
    model = _FakeDetector(("pedestrian", "car", "barrier"))  # a subset, in another order than nuScenes'
    dets = predict_split(model, nus_val)
    assert list(dets) == nus_val.tokens
    for token, det in dets.items():
        own = model.predict(nus_val.sample(token).network_points())
        assert isinstance(det, Detections) and det.class_names == tuple(nus_val.class_names)
        assert det.names == own.names  # the same classes, now as indices into the dataset's
        assert det.labels.tolist() == [nus_val.class_names.index(n) for n in own.names]
        assert torch.equal(det.boxes, own.boxes) and torch.equal(det.scores, own.scores)
    with pytest.raises(RegNetExploreError, match=r"predicts classes that v1.0-mini does not have: \['animal'\]"):
        predict_split(_FakeDetector(("car", "animal")), nus_val)


# --- the submission -----------------------------------------------------------------------------------------------


def test_submission_from_detections_holds_the_float32_values(nus_val, tmp_path):
    """The writers see float32 values converted to float64, exactly as the numpy dicts they took before; the
    devkit reads the file, and its own Box transforms give the same global boxes."""
    arrays = {t: _random_arrays(i, 7) for i, t in enumerate(nus_val.tokens)}
    from_f32 = {t: Detections.from_arrays(*a, nus_val.class_names) for t, a in arrays.items()}
    from_f64 = {t: Detections.from_arrays(b.astype(np.float64), s.astype(np.float64), lab, nus_val.class_names)
                for t, (b, s, lab) in arrays.items()}  # what the writers computed from the dicts
    path = write_submission(nus_val, from_f32, tmp_path / "sub.json")
    assert json.loads(path.read_text()) == to_submission(nus_val, from_f64)
    loaded = load_prediction(str(path), 500, DetectionBox)[0]
    assert sorted(loaded.sample_tokens) == sorted(nus_val.tokens)
    for token, (boxes, scores, labels) in arrays.items():
        lidar2ego, ego2global = nus_val.transforms(token)
        by_score = {b.detection_score: b for b in loaded[token]}
        assert len(by_score) == len(scores)  # every box is inside its class range
        for box, score, label in zip(boxes.astype(np.float64), scores, labels):
            x, y, z, length, width, height, yaw, vx, vy = box
            ref = Box([x, y, z + height / 2], [width, length, height], Quaternion(axis=[0, 0, 1], radians=yaw),
                      velocity=(vx, vy, 0.0))
            for m in (lidar2ego, ego2global):  # as mmdetection3d's lidar_nusc_box_to_global
                ref.rotate(Quaternion(matrix=m[:3, :3], atol=1e-7))
                ref.translate(m[:3, 3])
            ours = by_score[float(score)]  # the float32 score, exactly
            assert ours.detection_name == nus_val.class_names[label]
            assert np.allclose(ours.translation, ref.center, atol=1e-6)
            assert np.allclose(ours.size, ref.wlh) and np.allclose(ours.velocity, ref.velocity[:2], atol=1e-6)
            assert abs(abs(np.dot(ours.rotation, ref.orientation.elements)) - 1) < 1e-9


def test_writers_take_only_detections_of_the_datasets_classes(nus_val, lyft_val):
    boxes, scores, labels = _random_arrays(0, 3)
    token = nus_val.tokens[0]
    dets = {t: Detections.from_arrays(np.zeros((0, 9)), [], [], nus_val.class_names) for t in nus_val.tokens}
    with pytest.raises(RegNetExploreError, match=f"sample {token}: a dict, not Detections.*from_arrays"):
        to_submission(nus_val, {**dets, token: {"boxes": boxes, "scores": scores, "labels": labels}})
    other = Detections.from_arrays(boxes, scores, labels % 3, CLASSES)
    with pytest.raises(RegNetExploreError, match=r"labels index \('car', 'truck', 'pedestrian'\), not the dataset"):
        to_submission(nus_val, {**dets, token: other})
    with pytest.raises(RegNetExploreError, match="a dict, not Detections"):
        prediction_records(lyft_val, {t: {"boxes": boxes} for t in lyft_val.tokens})


def test_oracle_is_ground_truth_with_distinct_scores(lyft_val):
    dets, rank = oracle_detections(lyft_val), 0
    for token, det in dets.items():
        s = lyft_val.sample(token, with_points=False)
        assert isinstance(det, Detections) and det.class_names == tuple(lyft_val.class_names)
        assert np.array_equal(det.numpy()["boxes"], s.gt_boxes.astype(np.float64))
        assert det.names == s.gt_names
        assert np.array_equal(det.numpy()["scores"], 1.0 - 1e-6 * (rank + np.arange(len(det))))
        rank += len(det)


# --- the detections file read by `regnet-explore evaluate` ---------------------------------------------------------


def test_the_detections_file_round_trips_and_refuses_bad_records(lyft_val, tmp_path):
    boxes, scores, labels = _random_arrays(1, 4, dim=7, n_classes=len(lyft_val.class_names))
    dets = {t: Detections.from_arrays(boxes.astype(np.float32), scores.astype(np.float32), labels,
                                      lyft_val.class_names) for t in lyft_val.tokens}
    write_detections(tmp_path / "dets.jsonl", dets)
    back = read_detections(tmp_path / "dets.jsonl", lyft_val.class_names)
    assert list(back) == list(lyft_val.tokens)
    det = back[lyft_val.tokens[0]]
    assert isinstance(det, Detections) and det.class_names == tuple(lyft_val.class_names)
    assert torch.equal(det.boxes, torch.from_numpy(boxes.astype(np.float32)))  # float32 survives the text exactly

    token = lyft_val.tokens[1]
    write_detections(tmp_path / "bad.jsonl", {**dets, token: Detections.from_arrays(
        boxes, scores, np.zeros(4, dtype=np.int64), lyft_val.class_names)})
    text = (tmp_path / "bad.jsonl").read_text().replace('"labels": [0, 0, 0, 0]', '"labels": [9, 9, 9, 9]')
    (tmp_path / "bad.jsonl").write_text(text)
    with pytest.raises(RegNetExploreError, match=rf"bad.jsonl: line 2 \(sample {token}\): detections: labels must "
                                                 rf"lie in \[0, 9\)"):
        read_detections(tmp_path / "bad.jsonl", lyft_val.class_names)
    (tmp_path / "keys.jsonl").write_text(json.dumps({"token": token, "boxes": []}) + "\n")
    with pytest.raises(RegNetExploreError, match="keys.jsonl: line 1 is not a detections record"):
        read_detections(tmp_path / "keys.jsonl", lyft_val.class_names)
    torch.save(dets, tmp_path / "old.pt")
    with pytest.raises(RegNetExploreError, match="old.pt: line 1 is not a detections record"):
        read_detections(tmp_path / "old.pt", lyft_val.class_names)
