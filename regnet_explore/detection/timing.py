"""Per-stage wall time of a detector, measured from outside the model (the benchmark's and notebook 05's tool).

``with stage_timer(model) as t: model.predict(points)`` adds each stage's seconds to ``t``. The stages are the
calls of :meth:`PointPillars.forward` and :meth:`PointPillars.predict`, wrapped for the duration of the block;
on CUDA the device is synchronised around each stage so that the figures are per stage.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator

import torch

from regnet_explore.detection.protocol import Detector

STAGES = ("voxelize", "encoder", "scatter", "backbone", "neck", "head", "decode")
DEPLOY_STAGES = ("voxelize", "encoder", "scatter", "dense", "decode")  # dense = backbone + neck + head


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(call: Callable, name: str, timings: dict[str, float], device: torch.device) -> Callable:
    @functools.wraps(call)
    def run(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        out = call(*args, **kwargs)
        _sync(device)
        timings[name] += time.perf_counter() - start
        return out
    return run


def dense_stages(timings: dict[str, float]) -> dict[str, float]:
    """Timings by :data:`DEPLOY_STAGES`: a torch model's backbone, neck and head summed into ``dense``."""
    if "dense" in timings:
        return dict(timings)
    rest = {k: v for k, v in timings.items() if k not in ("backbone", "neck", "head")}
    return {**rest, "dense": timings["backbone"] + timings["neck"] + timings["head"]}


@contextlib.contextmanager
def stage_timer(model: Detector) -> Iterator[dict[str, float]]:
    """Seconds per stage of everything ``model`` runs inside the block (its :meth:`~Detector.timed_stages`): keys
    :data:`STAGES` for a ``PointPillars``, :data:`DEPLOY_STAGES` for an ``OnnxPointPillars`` (whose dense part is one
    graph)."""
    targets = model.timed_stages()
    timings = dict.fromkeys(targets, 0.0)
    device = model.device
    # an instance may hold its own attribute (torch.compile's OptimizedModule sets ``forward`` per instance)
    saved = [(obj, attr, obj.__dict__.get(attr, _CLASS)) for obj, attr in targets.values()]
    for name, (obj, attr) in targets.items():
        setattr(obj, attr, _timed(getattr(obj, attr), name, timings, device))
    try:
        yield timings
    finally:
        for obj, attr, own in saved:
            if own is _CLASS:
                delattr(obj, attr)  # the instance attribute goes; the class's method is back
            else:
                setattr(obj, attr, own)


_CLASS = object()
