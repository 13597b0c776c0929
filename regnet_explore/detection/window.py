"""Training windows: the same detector on a smaller square BEV window, aligned with the full range's grid.

A window's pillars, feature cells and anchors coincide with those of the full range, so weights trained on windows
load into the full config and see there what they saw in training (tests/test_train_engine.py checks the slice).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from regnet_explore.detection.configs import DetectorConfig
from regnet_explore.errors import RegNetExploreError

CROP_ALIGN_CELLS = 8  # the coarsest feature stride: windows start on its grid so anchors match the full range


def crop_config(cfg: DetectorConfig, half_extent: float, center: tuple[float, float] = (0.0, 0.0)) -> DetectorConfig:
    """The same network on a smaller square BEV window around ``center`` (weights trained on it load into the
    full config). The window's cells and anchors coincide with the full range's."""
    vx = cfg.voxel_size[0]
    step = CROP_ALIGN_CELLS * vx
    nx = round(2 * half_extent / vx)
    if abs(nx * vx - 2 * half_extent) > 1e-6 or nx % CROP_ALIGN_CELLS:
        raise RegNetExploreError(f"crop {half_extent}: the grid ({2 * half_extent / vx:g} cells) must be a whole "
                                 "multiple of 8 cells so every feature level keeps an integer size (e.g. 25, 32)")
    pcr = cfg.point_cloud_range
    cx, cy = center
    if any(abs(c / step - round(c / step)) > 1e-6 for c in center):
        raise RegNetExploreError(f"crop centre {center}: must lie on the {step:g} m grid of the coarsest feature map")
    if not (pcr[0] <= cx - half_extent and cx + half_extent <= pcr[3]
            and pcr[1] <= cy - half_extent and cy + half_extent <= pcr[4]):
        raise RegNetExploreError(f"crop window {half_extent} m around {center} leaves the range {pcr[:2]}..{pcr[3:5]}")
    voxel = dataclasses.replace(cfg.voxel, point_cloud_range=(cx - half_extent, cy - half_extent, pcr[2],
                                                              cx + half_extent, cy + half_extent, pcr[5]))
    shrink = half_extent / pcr[3]
    ranges = tuple((r[0] * shrink + cx, r[1] * shrink + cy, r[2], r[3] * shrink + cx, r[4] * shrink + cy, r[5])
                   for r in cfg.anchors.ranges)
    anchors = dataclasses.replace(cfg.anchors, ranges=ranges)
    where = f"_at{cx:g},{cy:g}" if center != (0.0, 0.0) else ""
    return dataclasses.replace(cfg, voxel=voxel, anchors=anchors, name=f"{cfg.name}_crop{half_extent:g}{where}")


def _aligned_centres(cfg: DetectorConfig, half_extent: float) -> tuple[float, list[tuple[int, int]]]:
    """The grid step of window centres and, per axis, the first and last aligned centre index inside the range."""
    step = CROP_ALIGN_CELLS * cfg.voxel_size[0]
    pcr = cfg.point_cloud_range
    return step, [(math.ceil((lo + half_extent) / step - 1e-9), math.floor((hi - half_extent) / step + 1e-9))
                  for lo, hi in ((pcr[0], pcr[3]), (pcr[1], pcr[4]))]


def random_window(cfg: DetectorConfig, half_extent: float, rng: np.random.Generator) -> DetectorConfig:
    """A crop window drawn uniformly among the aligned positions inside the full range."""
    step, bounds = _aligned_centres(cfg, half_extent)
    cx, cy = (float(rng.integers(first, last + 1) * step) for first, last in bounds)
    return crop_config(cfg, half_extent, (cx, cy))


def object_window(cfg: DetectorConfig, half_extent: float, centres: np.ndarray,
                  rng: np.random.Generator) -> DetectorConfig:
    """A crop window around one of the box ``centres`` (N, 2) drawn uniformly, shifted by up to half the
    half-extent and snapped to the aligned positions inside the full range; a random window when N = 0. On a
    wide range most uniform windows hold no object (the road is a strip), so every step learns from one."""
    centres = centres[(np.abs(centres) < np.asarray(cfg.point_cloud_range[3:5])).all(1)]
    if not len(centres):
        return random_window(cfg, half_extent, rng)
    step, bounds = _aligned_centres(cfg, half_extent)
    target = centres[rng.integers(len(centres))] + rng.uniform(-half_extent / 2, half_extent / 2, 2)
    cx, cy = (float(np.clip(round(t / step), first, last) * step) for t, (first, last) in zip(target, bounds))
    return crop_config(cfg, half_extent, (cx, cy))
