"""Bird's-eye-view plots with matplotlib: points, box footprints with headings, range rings; for PNGs and papers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from regnet_explore.detection.detections import Detections
from regnet_explore.figures import Figure
from regnet_explore.viz.common import (
    BoxSet,
    check_points,
    class_color,
    color_range,
    downsample,
    point_colors,
    view_boxes,
)


def _draw_boxes(ax, box_set: BoxSet, linestyle: str) -> None:
    if not len(box_set):
        return
    footprints = box_set.corners()[:, [0, 4, 7, 3, 0], :2]  # rear-right, front-right, front-left, rear-left, close
    colors = [class_color(n) for n in box_set.names]
    ax.add_collection(LineCollection(footprints, colors=colors, linewidths=1.4, linestyles=linestyle))
    heading = box_set.heading_segments()[:, :, :2]
    ax.add_collection(LineCollection(heading, colors=colors, linewidths=1.4, linestyles=linestyle))


def bev_figure(points: np.ndarray | torch.Tensor, gt: Detections | None = None, pred: Detections | None = None, *,
               gt_boxes: np.ndarray | torch.Tensor | None = None, gt_names: Sequence[str] | None = None,
               color_by: str = "height", extent: float | None = 50.0, rings: tuple[float, ...] = (10, 20, 30, 40, 50),
               score_thr: float = 0.0, max_points: int = 200_000, title: str | None = None,
               size: float = 8.0) -> Figure:
    """Top view: points (N, >=3) coloured by ``color_by``, GT footprints solid, predictions dashed, heading ticks.

    Ground truth: ``gt`` or ``gt_boxes`` (K, >=7) with ``gt_names``; predictions: ``pred``, those below
    ``score_thr`` left out (see :func:`~regnet_explore.viz.common.view_boxes`). ``extent``: half-width of the view
    in metres around the sensor (None: fit the points).
    """
    pts = downsample(check_points(points), max_points)
    value, label = point_colors(pts, color_by)
    # no pyplot: no global state, no GUI backend needed; constrained layout keeps the legend below the axes
    fig = Figure(figsize=(size, size * 1.08), dpi=100, layout="constrained")
    ax = fig.subplots()
    lo, hi = color_range(value)
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=value, s=0.3, cmap="viridis", vmin=lo, vmax=hi, linewidths=0,
                    rasterized=True)
    fig.colorbar(sc, ax=ax, fraction=0.035, pad=0.01, label=label)
    theta = np.linspace(0, 2 * np.pi, 181)
    for r in rings if extent is None else [r for r in rings if r <= extent]:  # a ring beyond the view: not drawn
        ax.plot(r * np.cos(theta), r * np.sin(theta), color="0.75", lw=0.6, zorder=0)
        ax.text(r * 0.707, r * 0.707, f"{r:g} m", color="0.5", fontsize=8, clip_on=True)
    handles, names = [], set()  # line style per group first, then one colour per class
    for box_set, style, group in zip(view_boxes(gt, pred, gt_boxes, gt_names, score_thr), ("solid", "dashed"),
                                     ("ground truth", "prediction")):
        if box_set is None:
            continue
        _draw_boxes(ax, box_set, style)
        handles.append(Line2D([], [], color="k", linestyle=style, label=f"{group} ({len(box_set)})"))
        names.update(box_set.names)
    handles += [Line2D([], [], color=class_color(n), lw=3, label=n) for n in sorted(names)]
    if handles:  # outside the data: below the axes, never over points, boxes or ring labels
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=9,
                   frameon=False, handlelength=3)  # long enough samples to tell dashed from solid
    if extent is not None:
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or f"bird's-eye view · {len(pts):,} points")
    return fig

