"""Loss and metric curves from a JSON-lines training log (mmdet's ``*.log.json`` fields)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from regnet_explore.errors import RegNetExploreError
from regnet_explore.figures import Figure
from regnet_explore.io import atomic_write, write_text_atomic


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a log, one JSON object per line (the env-info header included). A torn last line (a run
    killed while writing it) is ignored."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number < len(lines):
                raise RegNetExploreError(f"{path}:{number}: not a JSON record (the log was edited or corrupted)") \
                    from None
    return records


def trim_log(path: str | os.PathLike, epoch: int) -> int:
    """Cut a log back to what a checkpoint of ``epoch`` holds, before a resumed run appends to it: the train and val
    records of later epochs (logged after that checkpoint by a killed run) and a torn last line go; header records
    stay. Rewritten atomically; returns the number of records dropped."""
    records = read_log(path)
    kept = [r for r in records if r.get("mode") not in ("train", "val") or r.get("epoch", 0) <= epoch]
    text = Path(path).read_text()
    if len(kept) != len(records) or (text and not text.endswith("\n")):
        write_text_atomic("".join(json.dumps(r) + "\n" for r in kept), path)
    return len(records) - len(kept)


def curves_figure(records: list[dict], metrics: tuple[str, ...] = ("mAP", "NDS", "AP_car"),
                  title: str | None = None) -> Figure:
    """Left: training losses against iterations; right: validation metrics against epochs (when present); ``title``
    above both."""
    fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
    if title:
        fig.suptitle(title, fontsize=10)
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
    for key in [m for m in metrics if any(m in r for r in val)]:  # in the order asked: stable colours
        pts = [(r["epoch"], r[key]) for r in val if key in r]
        ax_val.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation")
    if val:
        ax_val.legend(fontsize=8)
    return fig


def plot_log(log_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Write the curves of a log as PNG (atomically)."""
    fig = curves_figure(read_log(log_path))
    with atomic_write(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(png_path)
