"""Every matplotlib figure the package returns shows as an image when a notebook displays it, in any kernel state:
IPython's display formatter (none of the inline backend's type printers registered, as in a fresh kernel before
any pyplot call) finds a PNG, and the PNG holds a drawing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure as MatplotlibFigure
from PIL import Image

from regnet_explore.detection.detections import Detections
from regnet_explore.train.curves import curves_figure
from regnet_explore.viz.bev import bev_figure
from regnet_explore.viz.edf import plot_edfs, plot_param_vs_error
from regnet_explore.viz.fidelity import plot_fidelity

IPython = pytest.importorskip("IPython")


def _displayed(fig) -> dict:
    from IPython.core.formatters import DisplayFormatter

    return DisplayFormatter().format(fig)[0]


def _drawn_fraction(png: bytes) -> float:
    """The share of pixels that are not the background's colour."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    background = pixels[0]
    return float((np.abs(pixels.astype(int) - background).sum(1) > 30).mean())


def test_a_bare_matplotlib_figure_has_no_image_in_a_fresh_kernel():
    """What notebook 06 showed: the control that makes the check below mean something."""
    fig = MatplotlibFigure()
    fig.add_subplot().plot([1, 2])
    assert set(_displayed(fig)) == {"text/plain"}


def _log() -> list[dict]:
    train = [{"mode": "train", "epoch": e, "iter": i, "loss": 3.0 / (e * i), "loss_cls": 1.0 / e}
             for e in (1, 2) for i in (1, 2, 3)]
    return [*train, {"mode": "val", "epoch": 1, "mAP": 0.1, "AP_car": 0.2}, {"mode": "val", "epoch": 2, "mAP": 0.3}]


def _bev():
    rng = np.random.default_rng(0)
    points = rng.uniform(-10, 10, size=(500, 4)).astype(np.float32)
    boxes = np.array([[2.0, 3.0, -1.0, 4.0, 1.8, 1.6, 0.3]], dtype=np.float32)
    gt = Detections.from_arrays(boxes, None, np.array([0]), ["car"])
    return bev_figure(points, gt, None, extent=10, title="synthetic")


FIGURES = {
    "curves_figure": lambda: curves_figure(_log()),
    "bev_figure": _bev,
    "plot_edfs": lambda: plot_edfs({"a": [0.1, 0.2, 0.3], "b": [0.15, 0.25, 0.4]}),
    "plot_param_vs_error": lambda: plot_param_vs_error([1, 2, 3], [0.3, 0.2, 0.25], "d"),
    "plot_fidelity": lambda: plot_fidelity([dict(seeds=1, models=3, factor=4, reference="AP_car@0.5",
                                                 proxy_errors=[0.4, 0.5, 0.6], reference_errors=[0.1, 0.2, 0.15],
                                                 reference_noise=0.02,
                                                 spearman=dict(estimate=0.5, low=-0.5, high=1.0))]),
}


@pytest.mark.parametrize("name", FIGURES)
def test_package_figures_display_as_drawn_images(name):
    shown = _displayed(FIGURES[name]())
    assert "image/png" in shown, f"{name}: displayed as {set(shown)} only"
    assert shown["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert _drawn_fraction(shown["image/png"]) > 0.01, f"{name}: a blank image"
