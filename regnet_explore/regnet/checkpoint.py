"""One reader for every checkpoint file the package meets: what the file is, and its tensors.

Kinds (:attr:`Checkpoint.kind`):

- ``pycls``: pycls's ``{'model_state': ..., 'ema_state': ...}`` (or a bare dict in its keys, ``stem.conv.weight``
  ...): ImageNet RegNets from its model zoo;
- ``backbone``: a RegNet in mmdet's ResNet-style keys (``layer1.0.conv1.weight`` ...): ``regnet2mmdet.py`` or
  ``regnet-explore convert`` output;
- ``detector``: a whole detector in mmdet3d's keys (``pts_backbone.`` ...): the released mmdetection3d files, this
  package's training checkpoints and its fp16 exports;
- ``other``: tensors in none of these layouts (a strict load then names what does not fit).

mmcv's ``{'meta', 'state_dict'}`` container and bare state dicts are both read, ``module.`` prefixes
(DataParallel) cut. Every file goes through :func:`io.load_checkpoint` (``weights_only``): a truncated, foreign or
malicious file is one clear error.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import load_checkpoint

PYCLS_ANCHOR = "stem.conv.weight"
BACKBONE_ANCHOR = "layer1.0.conv1.weight"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read: ``state`` as stored (pycls keys for a pycls file), ``meta`` (mmcv's), ``extra``
    the other top-level entries (an optimizer's state)."""

    path: str
    kind: str
    state: OrderedDict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def _pycls_state(obj: Mapping, path: str, use_ema: bool) -> object:
    if use_ema:
        if "ema_state" not in obj:
            raise RegNetExploreError(f"{path}: --ema asked for but the checkpoint has no 'ema_state'")
        return obj["ema_state"]
    return obj["model_state"] if "model_state" in obj else obj["ema_state"]


def _kind(state: Mapping, pycls_container: bool, path: str) -> str:
    if pycls_container or PYCLS_ANCHOR in state:
        if PYCLS_ANCHOR not in state:
            raise RegNetExploreError(f"{path}: not a pycls RegNet checkpoint: no {PYCLS_ANCHOR!r} (first keys: "
                                     f"{', '.join(list(state)[:3])})")
        return "pycls"
    if any(k.startswith("pts_") for k in state):
        return "detector"
    return "backbone" if any(k.endswith(BACKBONE_ANCHOR) for k in state) else "other"


def parse_checkpoint(obj: object, path: str | os.PathLike, use_ema: bool = False) -> Checkpoint:
    """A loaded checkpoint object (``torch.load``'s result) as a :class:`Checkpoint`; ``use_ema``: pycls's EMA
    weights instead of its model's."""
    path = os.fspath(path)
    if not isinstance(obj, Mapping):
        raise RegNetExploreError(f"{path}: checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    pycls = "model_state" in obj or "ema_state" in obj
    if use_ema and not pycls:
        raise RegNetExploreError(f"{path}: --ema asked for but the checkpoint has no 'ema_state'")
    state = _pycls_state(obj, path, use_ema) if pycls else obj.get("state_dict", obj)
    bare = state is obj
    meta = {} if bare else obj.get("meta") or {}
    if not isinstance(state, Mapping) or not isinstance(meta, Mapping):
        raise RegNetExploreError(f"{path}: 'state_dict' / 'meta' entries are not dicts")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad or not state:
        raise RegNetExploreError(f"{path}: not a state_dict: entries {bad[:5]} are not tensors" if bad else
                                 f"{path}: no tensors in it")
    state = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())
    taken = {"model_state", "ema_state"} if pycls else {"state_dict", "meta"}
    extra = {} if bare else {k: v for k, v in obj.items() if k not in taken}
    return Checkpoint(path, _kind(state, pycls, path), state, dict(meta), extra)


def read_checkpoint(path: str | os.PathLike, use_ema: bool = False,
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """The checkpoint file at ``path`` (weights only), read once."""
    return parse_checkpoint(load_checkpoint(path, map_location=map_location), path, use_ema)


__all__ = ["Checkpoint", "parse_checkpoint", "read_checkpoint"]
