"""open3d views: a native window where a display exists, an off-screen PNG where none does.

open3d is optional and needs system libraries (libusb-1.0-0; libEGL/libGL for rendering). When it cannot load, every
function here raises :class:`Open3DUnavailable` with what to install; nothing else in the package depends on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_write
from regnet_explore.viz.common import BOX_EDGES, check_points, class_color, color_range, point_colors, view_boxes

INSTALL_HINT = ("install it with `pip install open3d-cpu==0.20.0` (or `open3d`) and, on Debian/Ubuntu, "
                "`apt-get install libusb-1.0-0 libgl1 libegl1 libgomp1`")


class Open3DUnavailable(RegNetExploreError):
    """open3d cannot be imported or cannot render here."""


@lru_cache(maxsize=1)
def _import_open3d():
    try:
        import open3d  # noqa: PLC0415 - optional, heavy dependency
    except ImportError as e:  # OSError subclasses too: missing shared libraries
        raise Open3DUnavailable(f"open3d is not available ({e}); {INSTALL_HINT}") from None
    except OSError as e:
        raise Open3DUnavailable(f"open3d cannot load a system library ({e}); {INSTALL_HINT}") from None
    return open3d


def open3d_status() -> tuple[bool, str]:
    """(available, message) without raising: for notebooks and the demo to decide what to show."""
    try:
        o3d = _import_open3d()
    except Open3DUnavailable as e:
        return False, str(e)
    return True, f"open3d {o3d.__version__}"


def _hex_rgb(color: str) -> list[float]:
    return [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]


def build_geometries(points: np.ndarray | torch.Tensor, gt: Detections | None = None,
                     pred: Detections | None = None, *, gt_boxes: np.ndarray | torch.Tensor | None = None,
                     gt_names: Sequence[str] | None = None, color_by: str = "height",
                     score_thr: float = 0.0) -> list:
    """open3d geometries: the coloured point cloud and one LineSet per box set (GT and predictions).

    Ground truth: ``gt`` or ``gt_boxes`` (K, >=7) with ``gt_names``; predictions: ``pred``, those below
    ``score_thr`` left out (see :func:`~regnet_explore.viz.common.view_boxes`).
    """
    box_sets = view_boxes(gt, pred, gt_boxes, gt_names, score_thr)  # input errors before environment errors
    o3d = _import_open3d()
    import matplotlib  # noqa: PLC0415

    pts = check_points(points)
    value, _ = point_colors(pts, color_by)
    lo, hi = color_range(value)
    colors = matplotlib.colormaps["viridis"](np.clip((value - lo) / (hi - lo), 0, 1))[:, :3]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(colors)
    geoms = [cloud]
    edges = np.array(BOX_EDGES + ((8, 9),))  # plus the heading segment
    for box_set in box_sets:
        if box_set is None or not len(box_set):
            continue
        verts = np.concatenate([box_set.corners(), box_set.heading_segments()], axis=1)  # (K, 10, 3)
        lines = (edges[None] + 10 * np.arange(len(box_set))[:, None, None]).reshape(-1, 2)
        line_colors = np.repeat([_hex_rgb(class_color(n)) for n in box_set.names], len(edges), axis=0)
        ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(verts.reshape(-1, 3)), o3d.utility.Vector2iVector(lines))
        ls.colors = o3d.utility.Vector3dVector(line_colors)
        geoms.append(ls)
    return geoms


def render_png(path: str | os.PathLike, points: np.ndarray | torch.Tensor, gt: Detections | None = None,
               pred: Detections | None = None, *, gt_boxes: np.ndarray | torch.Tensor | None = None,
               gt_names: Sequence[str] | None = None, color_by: str = "height", score_thr: float = 0.0,
               width: int = 1280, height: int = 960, zoom: float = 0.3) -> None:
    """Off-screen render to PNG (legacy visualizer on an invisible window; open3d falls back to EGL headless).

    Boxes as in :func:`build_geometries`.
    """
    geoms = build_geometries(points, gt, pred, gt_boxes=gt_boxes, gt_names=gt_names, color_by=color_by,
                             score_thr=score_thr)
    o3d = _import_open3d()
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=width, height=height):
        raise Open3DUnavailable("open3d could not create an off-screen window (no EGL/GL driver?); "
                                "install libegl1 and libgl1, or use the plotly/BEV views")
    try:
        for g in geoms:
            vis.add_geometry(g)
        opt = vis.get_render_option()
        opt.point_size, opt.background_color = 1.5, np.array([1.0, 1.0, 1.0])
        ctrl = vis.get_view_control()
        ctrl.set_front([-0.55, -0.45, 0.7])
        ctrl.set_up([0.0, 0.0, 1.0])
        ctrl.set_lookat([0.0, 0.0, 0.0])
        ctrl.set_zoom(zoom)
        vis.poll_events()
        vis.update_renderer()
        with atomic_write(path) as tmp:
            png = str(tmp) + ".png"  # open3d picks the format from the extension
            vis.capture_screen_image(png, do_render=True)
            if not os.path.exists(png):
                raise Open3DUnavailable(f"{path}: open3d did not write the image (no working EGL/GL renderer?)")
            os.replace(png, tmp)
    finally:
        vis.destroy_window()


def show(points: np.ndarray | torch.Tensor, gt: Detections | None = None, pred: Detections | None = None, *,
         gt_boxes: np.ndarray | torch.Tensor | None = None, gt_names: Sequence[str] | None = None,
         color_by: str = "height", score_thr: float = 0.0) -> None:
    """A native open3d window (needs a display); boxes as in :func:`build_geometries`."""
    o3d = _import_open3d()
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise Open3DUnavailable("no display for an open3d window; use render_png() or the plotly scene instead")
    o3d.visualization.draw_geometries(build_geometries(points, gt, pred, gt_boxes=gt_boxes, gt_names=gt_names,
                                                      color_by=color_by, score_thr=score_thr))
