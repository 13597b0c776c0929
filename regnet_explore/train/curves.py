"""Loss and metric curves from a JSON-lines training log (mmdet's ``*.log.json`` fields)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from regnet_explore.io import atomic_write


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a log, one JSON object per line (the env-info header included)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def curves_figure(records: list[dict], metrics: tuple[str, ...] = ("mAP", "NDS", "AP_car")) -> Figure:
    """Left: training losses against iterations; right: validation metrics against epochs (when present)."""
    fig = Figure(figsize=(11, 4), dpi=100)
    ax_loss, ax_val = fig.subplots(1, 2)
    train = [r for r in records if r.get("mode") == "train"]
    per_epoch = {}
    for r in train:
        per_epoch[r["epoch"]] = max(per_epoch.get(r["epoch"], 0), r["iter"])
    offsets, total = {}, 0
    for e in sorted(per_epoch):
        offsets[e], total = total, total + per_epoch[e]
    x = [offsets[r["epoch"]] + r["iter"] for r in train]
    for key in ("loss", "loss_cls", "loss_bbox", "loss_dir"):
        if train and key in train[0]:
            ax_loss.plot(x, [r[key] for r in train], label=key, lw=1.5 if key == "loss" else 1)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    ax_loss.set_title("training loss")
    val = [r for r in records if r.get("mode") == "val"]
    for key in {k for r in val for k in r} & set(metrics):
        pts = [(r["epoch"], r[key]) for r in val if key in r]
        ax_val.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation")
    if val:
        ax_val.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Write the curves of a log as PNG (atomically)."""
    fig = curves_figure(read_log(log_path))
    with atomic_write(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(png_path)
