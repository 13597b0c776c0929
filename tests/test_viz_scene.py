"""Scene views: plotly 3D, matplotlib BEV, open3d off-screen, and a real browser drawing the exported HTML."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import re
import shutil
import subprocess
import threading

import matplotlib.image
import numpy as np
import pytest

from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.viz import open3d_view
from regnet_explore.viz.bev import bev_figure
from regnet_explore.viz.common import CLASS_COLORS, BoxSet, save_png, view_boxes
from regnet_explore.viz.scene3d import save_html, scene_figure

from .helpers import assert_colour_levels

NAMES = ("car", "truck", "pedestrian")


@pytest.fixture(scope="module")
def scene(real_frame):
    """The real frame's points and ground truth, and 20 predictions near its first boxes."""
    gt = real_frame.gt
    rng = np.random.default_rng(0)
    pred = Detections.from_arrays(gt["gt_boxes"][:20] + rng.normal(0, 0.2, (20, 7)), np.linspace(0.05, 0.95, 20),
                                  np.arange(20) % 3, NAMES)
    return real_frame.points, gt, pred


def _box_traces(fig, group=None):
    return [t for t in fig.data if t.meta and t.meta.get("kind") == "box" and (group is None or
                                                                            t.meta["group"] == group)]


def test_scene_figure_content(scene):
    points, gt, pred = scene
    fig = scene_figure(points, pred=pred, **gt, score_thr=0.5, max_points=10_000)
    gt_traces, pred_traces = _box_traces(fig, "GT"), _box_traces(fig, "pred")
    assert len(gt_traces) == len(gt["gt_boxes"])
    assert len(pred_traces) == int((pred.scores >= 0.5).sum())
    for trace in gt_traces:
        assert trace.line.color == CLASS_COLORS[trace.meta["class"]]
        assert trace.meta["class"] in trace.hovertext and "size l×w×h" in trace.hovertext
    assert all("score 0." in t.hovertext and t.line.dash == "dash" for t in pred_traces)
    assert {t.meta["class"] for t in pred_traces} <= set(NAMES)
    pts_trace = fig.data[0]
    assert len(pts_trace.x) == 10_000 and pts_trace.meta["total"] == len(points)
    assert "10,000 of 34,688 points" in fig.layout.title.text
    assert fig.layout.scene.aspectmode == "data"
    # a compact legend: one entry per class (toggling its ground truth and predictions together), and one key
    # entry per group saying its line style and count; below the scene, the colour bar beside it
    legend = [t.name for t in fig.data if t.showlegend is not False and t.meta.get("kind") == "box"]
    assert sorted(legend) == sorted({t.meta["class"] for t in _box_traces(fig)})
    assert all(t.legendgroup == t.meta["class"] for t in _box_traces(fig))
    keys = [t for t in fig.data if t.meta.get("kind") == "key"]
    assert [k.name for k in keys] == [f"ground truth ({len(gt_traces)}): solid",
                                      f"predictions ({len(pred_traces)}): dashed"]
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.groupclick == "togglegroup"
    assert fig.data[0].marker.colorbar.x >= 1.0 and fig.layout.height >= 700


def _plotly_array(value) -> np.ndarray:
    """An array as plotly saves it: a list, or a typed array (its bytes in base64 and their dtype)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.array(value, dtype=float)  # None (a break between line segments) becomes NaN


def _saved_figure(html: str) -> tuple[list[dict], dict]:
    """The data and layout that the saved page hands to ``Plotly.newPlot(div id, data, layout, config)``."""
    (call,) = re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', html)
    assert f'<div id="{call[1]}"' in html
    data, end = json.JSONDecoder().raw_decode(html, call.end())
    layout, _ = json.JSONDecoder().raw_decode(html, re.compile(r",\s*").match(html, end).end())
    return data, layout


def _corners(box: np.ndarray) -> np.ndarray:
    """A box's 8 corners from (x, y, z bottom, l, w, h, yaw), computed here."""
    x, y, z, length, width, height, yaw = box[:7]
    u, v = np.array([1, 1, -1, -1]) * length / 2, np.array([1, -1, -1, 1]) * width / 2
    xy = np.stack([x + u * np.cos(yaw) - v * np.sin(yaw), y + u * np.sin(yaw) + v * np.cos(yaw)], axis=1)
    return np.concatenate([np.c_[xy, np.full(4, z)], np.c_[xy, np.full(4, z + height)]])


def test_scene_colour_modes_and_html(scene, tmp_path):
    points, gt, pred = scene
    fig = scene_figure(points, pred=pred, **gt, color_by="intensity", score_thr=0.5, title="a nuScenes frame")
    assert_colour_levels(fig.data[0].marker, points[:, 3])
    save_html(fig, tmp_path / "scene.html")
    html = (tmp_path / "scene.html").read_text()
    assert len(html) > 1_000_000 and "plotly.js v" in html  # plotly.js embedded: the page opens offline
    data, layout = _saved_figure(html)
    assert layout["title"]["text"] == f"a nuScenes frame · {len(points):,} points"
    # every point of the frame (under max_points), with its colour level, as the figure holds them
    cloud = data[0]
    assert cloud["type"] == "scatter3d" and cloud["meta"] == {"kind": "points", "total": len(points),
                                                              "shown": len(points)}
    for axis, column in zip("xyz", points[:, :3].T):
        np.testing.assert_array_equal(_plotly_array(cloud[axis]), column.astype(np.float32))
    marker = cloud["marker"]
    np.testing.assert_array_equal(_plotly_array(marker["color"]), np.asarray(fig.data[0].marker.color))
    assert (marker["cmin"], marker["cmax"], marker["colorbar"]["title"]["text"]) == (0, 255, "intensity")
    assert marker["colorbar"]["ticktext"] == list(fig.data[0].marker.colorbar.ticktext)
    # one wireframe per box: the ground truth, then the predictions at or over the threshold, through its corners
    kept = (pred.scores >= 0.5).numpy()
    boxes = [t for t in data if t.get("meta", {}).get("kind") == "box"]
    assert [t["meta"]["group"] for t in boxes] == ["GT"] * len(gt["gt_boxes"]) + ["pred"] * int(kept.sum())
    assert len(data) == 1 + 2 + len(boxes)  # the points, the two line-style keys, the boxes
    for trace, box in zip(boxes, [*gt["gt_boxes"], *pred.boxes.numpy()[kept]], strict=True):
        drawn = np.stack([_plotly_array(trace[axis]) for axis in "xyz"], axis=1)
        assert all(np.isclose(drawn, corner, atol=1e-3).all(axis=1).any() for corner in _corners(box)), trace["name"]


def _is_picture(path, min_colours=20):
    img = matplotlib.image.imread(path)
    assert img.size and path.stat().st_size > 5000
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    return len(colours) >= min_colours


def test_bev_png(scene, tmp_path):
    points, gt, pred = scene
    fig = bev_figure(points, pred=pred, **gt, score_thr=0.3)
    ax = fig.axes[0]
    assert len(ax.collections[1].get_paths()) == len(gt["gt_boxes"])  # footprints after the point scatter
    save_png(fig, tmp_path / "bev.png")
    assert _is_picture(tmp_path / "bev.png")
    # the legend lies outside the data area: below the axes, overlapping neither them nor the colour bar
    assert ax.get_legend() is None and len(fig.legends) == 1
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    for other in fig.axes:  # the plot and its colour bar
        box = other.get_window_extent(renderer)
        assert not legend.overlaps(box), other


def _as_detections(gt) -> Detections:
    classes = sorted(set(gt["gt_names"]))
    return Detections.from_arrays(gt["gt_boxes"], None, [classes.index(n) for n in gt["gt_names"]], classes)


def test_ground_truth_as_detections_draws_as_the_arrays_do(scene):
    """Ground truth as Detections (scores of 1 from from_arrays) draws exactly as gt_boxes/gt_names: no scores."""
    points, gt, pred = scene
    from_arrays = scene_figure(points, pred=pred, **gt, max_points=5_000)
    from_detections = scene_figure(points, _as_detections(gt), pred, max_points=5_000)
    assert from_detections.to_json() == from_arrays.to_json()
    assert all("score" not in t.hovertext for t in _box_traces(from_detections, "GT"))
    bev_a, bev_d = bev_figure(points, pred=pred, **gt), bev_figure(points, _as_detections(gt), pred)
    paths = [[p.vertices.tolist() for p in c.get_paths()] for c in bev_a.axes[0].collections[1:]]
    assert paths == [[p.vertices.tolist() for p in c.get_paths()] for c in bev_d.axes[0].collections[1:]]


@pytest.mark.parametrize("view", ["scene", "bev", "open3d"])
def test_views_refuse_what_they_would_have_to_guess(scene, view):
    points, gt, pred = scene
    draw = {"scene": scene_figure, "bev": bev_figure, "open3d": open3d_view.build_geometries}[view]
    as_dict = {"boxes": gt["gt_boxes"], "names": gt["gt_names"]}
    with pytest.raises(RegNetExploreError, match="gt: expected Detections, got dict.*gt_boxes="):
        draw(points, as_dict)
    with pytest.raises(RegNetExploreError, match="pred: expected Detections, got dict"):
        draw(points, pred={"boxes": pred.boxes, "labels": pred.labels, "scores": pred.scores})
    with pytest.raises(RegNetExploreError, match="pred: expected Detections, got BoxSet"):
        draw(points, pred=BoxSet(gt["gt_boxes"], gt["gt_names"]))
    with pytest.raises(RegNetExploreError, match="not both"):
        draw(points, _as_detections(gt), **gt)
    with pytest.raises(RegNetExploreError, match="needs both gt_boxes"):
        draw(points, gt_boxes=gt["gt_boxes"])
    with pytest.raises(TypeError):  # the old positional class_names argument is gone
        draw(points, None, pred, list(NAMES))


def test_view_boxes_and_box_set_checks():
    boxes = np.array([[0, 0, 0, 4, 2, 1.5, 0.3], [5, 5, 0, 4, 2, 1.5, 0.0]], dtype=np.float32)
    det = Detections.from_arrays(boxes, np.array([0.2, 0.8], dtype=np.float32), [1, 0], ("car", "pedestrian"))
    gt_set, pred_set = view_boxes(det, det, score_thr=0.5)
    assert gt_set.names == ["pedestrian", "car"] and gt_set.scores is None and gt_set.boxes.dtype == np.float64
    assert np.array_equal(gt_set.boxes, boxes.astype(np.float64))
    assert pred_set.names == ["car"] and pred_set.scores.tolist() == [np.float32(0.8).item()]
    assert view_boxes() == (None, None)
    assert len(BoxSet(np.zeros((0,)), [])) == 0
    with pytest.raises(RegNetExploreError, match=r"\(K, >=7\)"):
        BoxSet(np.zeros((2, 6)), ["car", "car"])
    with pytest.raises(RegNetExploreError, match="2 boxes but 1 class names"):
        BoxSet(boxes, ["car"])
    with pytest.raises(RegNetExploreError, match="2 boxes but 3 scores"):
        BoxSet(boxes, ["car", "car"], np.ones(3))


def test_open3d_offscreen_png(scene, tmp_path):
    ok, message = open3d_view.open3d_status()
    if not ok:
        pytest.skip(message)
    points, gt, pred = scene
    open3d_view.render_png(tmp_path / "o3d.png", points, pred=pred, **gt, width=640, height=480)
    assert _is_picture(tmp_path / "o3d.png")


def test_open3d_missing_fails_soft(monkeypatch, scene):
    import builtins

    real_import = builtins.__import__

    def no_open3d(name, *args, **kwargs):
        if name == "open3d":
            raise ImportError("libusb-1.0.so.0: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    open3d_view._import_open3d.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_open3d)
    try:
        ok, message = open3d_view.open3d_status()
        assert not ok and "pip install open3d-cpu" in message and "libusb-1.0-0" in message
        with pytest.raises(open3d_view.Open3DUnavailable, match="apt-get install"):
            open3d_view.render_png("never.png", scene[0])
        assert scene_figure(scene[0]).data  # the rest keeps working
    finally:
        open3d_view._import_open3d.cache_clear()


@pytest.mark.slow
def test_html_scene_draws_in_headless_chromium(scene, tmp_path):
    """Serve the exported HTML on loopback and screenshot it in Debian's chromium (software WebGL)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (setup.sh installs it on Debian)")
    points, gt, pred = scene
    save_html(scene_figure(points, pred=pred, **gt), tmp_path / "scene.html")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/scene.html"
        flags = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,800",
                 "--virtual-time-budget=15000", f"--screenshot={tmp_path / 'shot.png'}"]
        subprocess.run([chromium, *flags, url], check=True, capture_output=True, timeout=120)
    finally:
        server.shutdown()
    img = matplotlib.image.imread(tmp_path / "shot.png")[..., :3]
    plot = img[100:700, 100:800]  # the WebGL canvas area, away from the title and legend
    non_white = (plot < 0.95).any(axis=-1).mean()
    assert non_white > 0.02, "the 3D scene did not draw (blank canvas)"
    assert _is_picture(tmp_path / "shot.png", min_colours=50)

