"""The scene browser's callbacks, without a browser: widget values in, figure data out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.lab import PLOTLY_ROUTE, PLOTLY_SERVED
from regnet_explore.viz.common import BoxSet
from regnet_explore.viz.widgets import SceneBrowser, ServedFigureWidget, figure_widget, match_counts

from .helpers import assert_colour_levels


@dataclass
class _Sample:
    token: str
    points: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray


class _Data:
    class_names = ("car", "pedestrian")

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.samples = []
        for i in range(n):
            boxes = np.concatenate([rng.uniform(-20, 20, (3 + i, 2)), np.zeros((3 + i, 1)),
                                    np.tile([4.0, 2.0, 1.5], (3 + i, 1)), rng.uniform(-3, 3, (3 + i, 1))], 1)
            pts = np.concatenate([rng.uniform(-30, 30, (500 + 100 * i, 3)), rng.random((500 + 100 * i, 2))], 1)
            self.samples.append(_Sample(f"tok{seed}-{i}", pts.astype(np.float32), boxes,
                                        np.array([0 if j % 2 else 1 for j in range(3 + i)])))

    def __len__(self):
        return len(self.samples)

    def sample(self, i):
        return self.samples[i]


def _predict(sample):
    n = len(sample.gt_boxes)
    return Detections.from_arrays(sample.gt_boxes + 0.1, np.linspace(0.1, 0.9, n), sample.gt_labels,
                                  _Data.class_names)


def _boxes(fig, group):
    return [t for t in fig.data if t.meta and t.meta.get("kind") == "box" and t.meta["group"] == group]


def test_slider_changes_figure_in_place():
    browser = SceneBrowser({"val": _Data(4, 0), "train": _Data(2, 1)}, _predict, score_thr=0.0)
    fig = browser.figure
    assert len(fig.data[0].x) == 500 and len(_boxes(fig, "GT")) == 3 and len(_boxes(fig, "pred")) == 3
    browser.index.value = 2
    assert browser.figure is fig  # same widget, new data
    assert len(fig.data[0].x) == 700 and len(_boxes(fig, "GT")) == 5
    assert "tok0-2" in fig.layout.title.text
    browser.score.value = 0.5
    assert len(_boxes(fig, "pred")) == int((np.linspace(0.1, 0.9, 5) >= 0.5).sum())
    browser.classes.value = ("car",)
    assert {t.meta["class"] for t in _boxes(fig, "GT") + _boxes(fig, "pred")} == {"car"}
    browser.show_gt.value = False
    assert not _boxes(fig, "GT")
    browser.color_by.value = "intensity"
    assert_colour_levels(fig.data[0].marker, browser.current()[0].points[:, 3])
    assert "TP" in browser.status.value


def test_dataset_switch_resets_range():
    browser = SceneBrowser({"val": _Data(4, 0), "train": _Data(2, 1)}, _predict)
    browser.index.value = 3
    browser.dataset.value = "train"
    assert browser.index.max == 1 and browser.index.value == 1
    assert "tok1-1" in browser.figure.layout.title.text


def test_predictor_must_return_detections():
    def as_dict(sample):
        return {"boxes": sample.gt_boxes, "labels": sample.gt_labels, "scores": np.ones(len(sample.gt_boxes))}

    with pytest.raises(RegNetExploreError, match="returned a dict, not Detections"):
        SceneBrowser({"val": _Data(2, 0)}, as_dict)


def test_class_filter_uses_the_labels_names():
    browser = SceneBrowser({"val": _Data(2, 0)}, _predict, score_thr=0.0)
    browser.classes.value = ("pedestrian",)
    fig = browser.figure
    assert len(_boxes(fig, "GT")) == 2 == len(_boxes(fig, "pred"))  # labels 1, 0, 1 of the first sample
    assert {t.meta["class"] for t in _boxes(fig, "GT") + _boxes(fig, "pred")} == {"pedestrian"}
    assert "<b>2</b> ground-truth boxes" in browser.status.value and "TP 2" in browser.status.value


def test_match_counts():
    gt = BoxSet(np.array([[0, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0.0]]), ["car", "car"])
    pred = BoxSet(np.array([[0.5, 0, 0, 4, 2, 1.5, 0], [10, 3, 0, 4, 2, 1.5, 0], [0.2, 0, 0, 4, 2, 1.5, 0]]),
                  ["car", "car", "car"], np.array([0.9, 0.8, 0.3]))
    assert match_counts(gt, pred) == {"tp": 1, "fp": 2, "fn": 1}
    assert match_counts(gt, pred, max_distance=4.0) == {"tp": 2, "fp": 1, "fn": 0}


def test_figure_widget_imports_the_served_module_only_when_served(monkeypatch):
    monkeypatch.delenv(PLOTLY_SERVED, raising=False)
    own = figure_widget()
    assert not isinstance(own, ServedFigureWidget) and len(own._esm) > 1_000_000  # plotly.js inside
    monkeypatch.setenv(PLOTLY_SERVED, PLOTLY_ROUTE)
    served = figure_widget()
    assert isinstance(served, ServedFigureWidget) and len(served._esm) < 1_000
    assert f'"{PLOTLY_ROUTE}widgetbundle.js"' in served._esm and "export default" in served._esm
