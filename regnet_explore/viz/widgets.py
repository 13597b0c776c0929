"""ipywidgets scene browser: slide through samples, filter boxes, compare ground truth with predictions.

The figure is one ``plotly.graph_objects.FigureWidget`` updated in place (no re-creation flicker, and the camera
stays where the user turned it). Every callback is a plain method, so the browser is testable without a front end:
set a widget's ``.value`` and the figure's data follows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from regnet_explore.data.dataset import Sample
from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.viz.common import BoxSet
from regnet_explore.viz.scene3d import scene_figure
from regnet_explore.viz.served_plotly import PLOTLY_ROUTE, PLOTLY_SERVED

Predictor = Callable[[Sample], Detections]

# The module of a figure widget when the Jupyter server serves plotly's (regnet_explore/lab.py): it imports that
# copy from the page's own server, so saved widget state holds these lines instead of 4.7 MB of plotly.js per figure.
SERVED_MODULE = f"""
const config = document.getElementById("jupyter-config-data");
const base = (config && JSON.parse(config.textContent).baseUrl) || "/";
const plotly = await import(new URL(base + "{PLOTLY_ROUTE}widgetbundle.js", location.origin).href);
export default plotly.default;
"""


class ServedFigureWidget(go.FigureWidget):
    """A ``FigureWidget`` whose JavaScript module comes from the Jupyter server instead of the widget state."""
    _esm = SERVED_MODULE


def figure_widget() -> go.FigureWidget:
    """An empty figure widget: a ``ServedFigureWidget`` in kernels started by a Jupyter server that serves plotly's
    module (``PLOTLY_SERVED`` in the environment), else plotly's own ``FigureWidget``."""
    return ServedFigureWidget() if os.environ.get(PLOTLY_SERVED) else go.FigureWidget()


def match_counts(gt: BoxSet, pred: BoxSet, max_distance: float = 2.0) -> dict[str, int]:
    """A sample's share of the nuScenes-style metric: greedy by score, same class, BEV centre distance <= d.

    Returns true positives, false positives and missed ground-truth boxes.
    """
    tp = 0
    if len(gt) and len(pred):
        dist = np.linalg.norm(pred.boxes[:, None, :2] - gt.boxes[None, :, :2], axis=-1)
        dist[np.asarray(pred.names)[:, None] != np.asarray(gt.names)[None, :]] = np.inf
        taken = np.zeros(len(gt), dtype=bool)
        order = np.argsort(-pred.scores) if pred.scores is not None else np.arange(len(pred))
        for i in order:  # a few dozen boxes per sample: this is display code, not a hot path
            d = np.where(taken, np.inf, dist[i])
            j = int(np.argmin(d))
            if d[j] <= max_distance:
                taken[j], tp = True, tp + 1
    return {"tp": tp, "fp": len(pred) - tp, "fn": len(gt) - tp}


class SceneBrowser:
    """Dataset/split dropdown, sample slider with play, score threshold, class toggles, GT/prediction toggles and
    colour choice over a 3D scene, with per-sample counts.

    ``datasets``: label -> loader (``len()``, ``sample(i)`` with points, gt_boxes, gt_labels, token, and
    ``class_names``); ``predict``: Sample -> Detections, called once per sample and cached.
    """

    def __init__(self, datasets: Mapping[str, object], predict: Predictor | None = None, max_points: int = 25_000,
                 score_thr: float = 0.3):
        if not datasets:
            raise ValueError("SceneBrowser needs at least one dataset")
        self.datasets, self.predict, self.max_points = dict(datasets), predict, max_points
        self._cache: dict[tuple[str, int], tuple[Sample, Detections | None]] = {}
        first = next(iter(self.datasets.values()))
        self.dataset = w.Dropdown(options=list(self.datasets), description="data",
                                  layout=w.Layout(width="max-content", min_width="300px"))  # the whole label
        self.index = w.IntSlider(0, 0, max(len(first) - 1, 0), description="sample", continuous_update=False)
        self.play = w.Play(interval=1500, min=0, max=self.index.max)
        w.jslink((self.play, "value"), (self.index, "value"))
        self.score = w.FloatSlider(score_thr, min=0.0, max=1.0, step=0.05, description="score ≥",
                                   continuous_update=False)
        self.classes = w.SelectMultiple(options=first.class_names, value=tuple(first.class_names),
                                        description="classes", rows=min(10, len(first.class_names)))
        self.show_gt = w.Checkbox(True, description="ground truth", indent=False)
        self.show_pred = w.Checkbox(predict is not None, description="predictions", disabled=predict is None,
                                    indent=False)
        self.color_by = w.Dropdown(options=["height", "intensity", "time"], description="colour")
        self.status = w.HTML()
        self.figure = figure_widget()
        self.dataset.observe(self._on_dataset, names="value")
        for control in (self.index, self.score, self.classes, self.show_gt, self.show_pred, self.color_by):
            control.observe(lambda _change: self.update(), names="value")
        self.update()

    @property
    def widget(self) -> w.Widget:
        # Controls in a row above the figure: beside it, the 700 px plot and the controls overflow a notebook cell.
        controls = w.HBox([w.VBox([self.dataset, w.HBox([self.play, self.index]), self.score, self.color_by]),
                           w.VBox([self.classes]),
                           w.VBox([self.show_gt, self.show_pred, self.status])],
                          layout=w.Layout(flex_flow="row wrap"))
        return w.VBox([controls, self.figure])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _on_dataset(self, _change) -> None:
        data = self.datasets[self.dataset.value]
        with self.index.hold_trait_notifications():
            self.index.max = self.play.max = max(len(data) - 1, 0)
            self.index.value = min(self.index.value, self.index.max)
        self.classes.options = data.class_names
        self.classes.value = tuple(data.class_names)
        self.update()

    def current(self) -> tuple[Sample, Detections | None]:
        """(sample, predictions) of the selected sample; predictions are computed once and cached."""
        key = (self.dataset.value, self.index.value)
        if key not in self._cache:
            sample = self.datasets[key[0]].sample(key[1])
            pred = self.predict(sample) if self.predict else None
            if pred is not None and not isinstance(pred, Detections):
                raise RegNetExploreError(f"SceneBrowser predict: returned a {type(pred).__name__}, not Detections")
            self._cache[key] = (sample, pred)
        return self._cache[key]

    def update(self) -> None:
        """Redraw the figure in place from the current control values."""
        sample, pred = self.current()
        wanted = set(self.classes.value)
        class_names = self.datasets[self.dataset.value].class_names
        gt = Detections.from_arrays(sample.gt_boxes, None, sample.gt_labels, class_names).of_classes(wanted)
        shown_pred = pred.above(self.score.value).of_classes(wanted) if pred is not None else None
        fresh = scene_figure(sample.points, gt if self.show_gt.value else None,
                             shown_pred if self.show_pred.value else None, color_by=self.color_by.value,
                             max_points=self.max_points, title=f"{self.dataset.value} · {sample.token[:8]}")
        with self.figure.batch_update():
            if len(self.figure.data):
                self.figure.data[0].update(fresh.data[0].to_plotly_json())
            else:
                self.figure.add_trace(fresh.data[0])
            for key in ("title", "scene", "legend", "margin", "height", "autosize", "template", "modebar"):
                self.figure.layout[key] = fresh.layout[key]
        self.figure.data = self.figure.data[:1]  # box traces change in number: replace them, keep the widget
        self.figure.add_traces(list(fresh.data[1:]))
        counts = (match_counts(BoxSet.from_ground_truth(gt), BoxSet.from_detections(shown_pred))
                  if shown_pred is not None else None)
        text = f"<b>{len(gt)}</b> ground-truth boxes"
        if shown_pred is not None:
            text += (f" · <b>{len(shown_pred)}</b> predictions ≥ {self.score.value:.2f}<br>metric share (2 m): "
                     f"TP {counts['tp']}, FP {counts['fp']}, missed {counts['fn']}")
        self.status.value = text

