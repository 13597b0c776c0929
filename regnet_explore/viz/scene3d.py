"""Interactive 3D scenes with plotly: renders in JupyterLab with no extension, saves to standalone HTML."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from regnet_explore.detection.detections import Detections
from regnet_explore.io import atomic_write
from regnet_explore.viz.common import (
    BOX_EDGES,
    BoxSet,
    check_points,
    class_color,
    color_range,
    downsample,
    point_colors,
    view_boxes,
)

GT_GROUP, PRED_GROUP = "GT", "pred"


def _wireframe(corners: np.ndarray, heading: np.ndarray) -> tuple[list, list, list]:
    """One line trace's x, y, z for a box: 12 edges plus the heading mark, separated by None."""
    xs, ys, zs = [], [], []
    for a, b in BOX_EDGES:
        for p in (corners[a], corners[b]):
            xs.append(p[0]), ys.append(p[1]), zs.append(p[2])
        xs.append(None), ys.append(None), zs.append(None)
    for p in heading:
        xs.append(p[0]), ys.append(p[1]), zs.append(p[2])
    return xs, ys, zs


def box_traces(box_set: BoxSet, group: str, shown: set[str] | None = None) -> list[go.Scatter3d]:
    """One trace per box (hover: class, score, size). The legend has one entry per class (its first box, across
    groups when ``shown`` is shared); clicking it toggles the class's ground truth and predictions together."""
    traces, shown = [], set() if shown is None else shown
    dash = "dash" if group == PRED_GROUP else "solid"
    for corners, heading, box, name, i in zip(box_set.corners(), box_set.heading_segments(), box_set.boxes,
                                              box_set.names, range(len(box_set))):
        x, y, z = _wireframe(corners, heading)
        score = f"<br>score {box_set.scores[i]:.3f}" if box_set.scores is not None else ""
        hover = (f"{group}: <b>{name}</b>{score}<br>size l×w×h {box[3]:.2f}×{box[4]:.2f}×{box[5]:.2f} m"
                 f"<br>centre ({box[0]:.1f}, {box[1]:.1f}, {box[2] + box[5] / 2:.1f}) yaw {box[6]:.2f}")
        traces.append(go.Scatter3d(
            x=x, y=y, z=z, mode="lines", line=dict(color=class_color(name), width=4, dash=dash),
            name=name, legendgroup=name, showlegend=name not in shown, hovertext=hover, hoverinfo="text",
            meta={"kind": "box", "group": group, "class": name}))
        shown.add(name)
    return traces


def style_key(group: str, count: int) -> go.Scatter3d:
    """A legend-only entry saying how a group is drawn (ground truth solid, predictions dashed) and how many."""
    label = {GT_GROUP: "ground truth", PRED_GROUP: "predictions"}[group]
    return go.Scatter3d(x=[None], y=[None], z=[None], mode="lines", name=f"{label} ({count}): "
                        f"{'dashed' if group == PRED_GROUP else 'solid'}", legendgroup=f"key:{group}",
                        line=dict(color="#444", width=4, dash="dash" if group == PRED_GROUP else "solid"),
                        hoverinfo="skip", meta={"kind": "key", "group": group})


def color_levels(value: np.ndarray) -> tuple[np.ndarray, dict[int, float]]:
    """A point's colour value as one of 256 levels over its 1st-99th percentile range (uint8: a quarter of the bytes
    a saved figure or widget state holds for it, and all the colour scale can show), with the colour bar's ticks
    (level -> value)."""
    lo, hi = color_range(value)
    levels = np.round(np.clip((value - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    return levels, {int(t): lo + (hi - lo) * t / 255 for t in np.linspace(0, 255, 5).round()}


def scene_figure(points: np.ndarray | torch.Tensor, gt: Detections | None = None, pred: Detections | None = None,
                 *, gt_boxes: np.ndarray | torch.Tensor | None = None, gt_names: Sequence[str] | None = None,
                 color_by: str = "height", max_points: int = 60_000, score_thr: float = 0.0,
                 title: str | None = None, seed: int = 0) -> go.Figure:
    """Points (N, >=3) and ground-truth / predicted boxes in one 3D figure.

    Ground truth: ``gt`` or ``gt_boxes`` (K, >=7: x, y, z_bottom, l, w, h, yaw) with ``gt_names``; predictions:
    ``pred``, those below ``score_thr`` left out (see :func:`~regnet_explore.viz.common.view_boxes`).
    Large clouds are down-sampled to ``max_points`` for the browser; the count is shown in the title.
    """
    pts = check_points(points)
    shown = downsample(pts, max_points, seed)
    value, label = point_colors(shown, color_by)
    levels, ticks = color_levels(value)
    xyz = shown[:, :3].astype(np.float32)
    fig = go.Figure()
    fig.add_trace(go.Scatter3d(
        x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", name=f"points ({len(shown):,})",
        marker=dict(size=1.5, color=levels, colorscale="Viridis", cmin=0, cmax=255,
                    # beside the scene on the right, not over the points
                    colorbar=dict(title=dict(text=label, side="right"), thickness=12, x=1.0, xanchor="left",
                                  len=0.7, tickvals=list(ticks), ticktext=[f"{v:.3g}" for v in ticks.values()])),
        hoverinfo="skip", meta={"kind": "points", "total": len(pts), "shown": len(shown)}))
    groups = [(b, g) for b, g in zip(view_boxes(gt, pred, gt_boxes, gt_names, score_thr), (GT_GROUP, PRED_GROUP))
              if b is not None]
    fig.add_traces([style_key(group, len(box_set)) for box_set, group in groups])  # the line-style key first
    classes: set[str] = set()
    for box_set, group in groups:
        fig.add_traces(box_traces(box_set, group, classes))
    count = f"{len(shown):,} of {len(pts):,} points" if len(shown) < len(pts) else f"{len(pts):,} points"
    fig.update_layout(
        # left-aligned: clear of the mode bar plotly draws at the top right
        title=dict(text=f"{title + ' · ' if title else ''}{count}", x=0.01, xanchor="left", font=dict(size=14)),
        height=720, autosize=True,  # the width of its cell (plotly.js's default, autosize off, is 700 px)
        scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)",
                   camera=dict(eye=dict(x=-1.8, y=-1.8, z=1.2), up=dict(x=0, y=0, z=1))),
        modebar=dict(orientation="v"),  # down the right edge, never over the title
        # one row under the scene: the 3D viewport keeps the full width
        legend=dict(orientation="h", x=0.0, y=0.0, yanchor="top", groupclick="togglegroup",
                    itemsizing="constant", font=dict(size=11)),
        margin=dict(l=0, r=0, t=40, b=40), template="plotly_white")
    return fig


def save_html(fig: go.Figure, path: str | os.PathLike) -> None:
    """Standalone HTML (plotly.js embedded: opens offline), written atomically."""
    with atomic_write(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
