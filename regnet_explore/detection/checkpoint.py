"""Detector checkpoints in mmdet3d's layout, and ImageNet RegNet weights for the backbone.

mmdet3d (mmcv ``save_checkpoint``) writes ``{'meta': {..., 'CLASSES': ...}, 'state_dict': {pts_...}}``, optionally
with an optimizer; a bare state_dict and ``module.`` prefixes (DataParallel) are accepted too. Everything is
read with ``torch.load(weights_only=True)``: a truncated, foreign or malicious file is one clear error.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import save_checkpoint_atomic
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.regnet.convert import PretrainedLoadReport, load_pretrained

log = logging.getLogger(__name__)

# mmdet3d v1.0.0rc0 (2022-02) refactored the box conventions; the v0.1.0_models files are dated 2020-2021
REFACTOR_DATE = 20220201
RELEASE_NAME = re.compile(r"_(20\d{6})_\d{6}-[0-9a-f]{8}\.pth$")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version.split("rc")[0])[:3])


def checkpoint_is_legacy(meta: Mapping, path: str | os.PathLike | None = None) -> bool:
    """Whether weights were trained under mmdet3d < 1.0.0rc0 box conventions.

    Our own files say so (``meta['legacy']``); mmdet3d's carry ``mmdet3d_version``; without either, the
    released ``v0.1.0_models`` file names (``..._YYYYMMDD_HHMMSS-hash.pth``) give the training date.
    """
    if "legacy" in meta:
        return bool(meta["legacy"])
    version = meta.get("mmdet3d_version")
    if version:
        return _version_tuple(str(version)) < (1, 0, 0)
    match = RELEASE_NAME.search(os.fspath(path)) if path is not None else None
    return bool(match) and int(match.group(1)) < REFACTOR_DATE


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Strict load; any missing, unexpected or mis-shaped key is named in one RegNetExploreError.

    Missing ``num_batches_tracked`` buffers alone are tolerated (mmcv does the same).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)})"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
        parts = [f"{len(x)} {label}: {', '.join(x)}" for x, label in
                 ((missing, "missing"), (unexpected, "unexpected"), (mismatched, "shape mismatches")) if x]
        raise RegNetExploreError(f"{path}: checkpoint does not fit config {name} (a checkpoint of another "
                                 f"config?); " + "; ".join(parts))
    full = OrderedDict((k, state.get(k, v)) for k, v in expected.items())
    model.load_state_dict(full, strict=True)


def save_checkpoint(detector: nn.Module, path: str | os.PathLike, meta: Mapping | None = None,
                    extra: Mapping | None = None) -> None:
    """Writes ``{'meta', 'state_dict'}`` atomically (temp file + rename), loadable by mmdet3d and by us.

    meta gets CLASSES (mmdet3d 0.x/1.0), dataset_meta.classes (mmengine), the config name and the box
    convention (``legacy``) on top of what the caller passes. ``extra`` adds top-level entries, e.g.
    ``{'optimizer': optimizer.state_dict()}`` as mmcv writes it (plain tensors and numbers only, so that
    ``weights_only`` loading still works).
    """
    cfg = detector.cfg
    full_meta = {"CLASSES": list(cfg.class_names), "dataset_meta": {"classes": list(cfg.class_names)},
                 "config": cfg.name, "legacy": bool(getattr(detector, "legacy", False)), **(meta or {})}
    state = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in detector.state_dict().items())
    save_checkpoint_atomic({**(extra or {}), "meta": full_meta, "state_dict": state}, path)


def load_pretrained_backbone(detector: nn.Module, path: str | os.PathLike) -> PretrainedLoadReport:
    """ImageNet RegNet weights in mmdet's ResNet-style layout (``regnet2mmdet`` output) into ``pts_backbone``.

    Non-strict like mmcv, but every skipped tensor is reported with its reason (stem, ``fc``, and the two
    layer1.0 convs whose input is 32 wide on ImageNet but 64 here); the report is logged and returned.
    """
    backbone = detector.pts_backbone
    if not isinstance(backbone, RegNet):
        raise RegNetExploreError(f"{path}: ImageNet RegNet weights need a RegNet backbone; "
                                 f"config {detector.cfg.name} uses {type(backbone).__name__}")
    report = load_pretrained(backbone, path)
    if not report.loaded:
        raise RegNetExploreError(f"{path}: no tensor of this file fits the {type(backbone).__name__} of config "
                                 f"{detector.cfg.name} (a different RegNet size or layout?)")
    log.warning("%s: %s", path, report.describe())
    return report


def export_weights(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True) -> int:
    """Weights only (no optimizer), floating tensors in fp16 when ``half``: the shipped-checkpoint format.

    Loading casts them back to the model's dtype. Returns the number of bytes written.
    """
    ckpt = read_checkpoint(src)
    state, meta = ckpt.state, ckpt.meta
    if half:
        state = OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in state.items())
    keep = {k: meta[k] for k in ("CLASSES", "dataset_meta", "config", "legacy", "epoch", "iter", "seed", "train")
            if k in meta}
    save_checkpoint_atomic({"meta": {**keep, "exported_from": os.fspath(src), "fp16": half}, "state_dict": state},
                           dst)
    return os.path.getsize(dst)
