"""What every detector backend offers: the torch :class:`~regnet_explore.detection.detector.PointPillars` and the
onnxruntime ``deploy.runtime.OnnxPointPillars`` alike, so that inference, timing and the split runner take either."""

from __future__ import annotations

from typing import Protocol

import torch

from regnet_explore.detection.configs import DetectorConfig
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import PointsLike


class Detector(Protocol):
    cfg: DetectorConfig
    device: torch.device

    @property
    def legacy(self) -> bool:
        """Whether the weights follow mmdet3d < 1.0's box conventions."""

    def predict(self, points: PointsLike, score_thr: float | None = None) -> Detections | list[Detections]:
        """Boxes for one cloud (N, 4) or a list of clouds (a list of Detections)."""

    def timed_stages(self) -> dict[str, tuple[object, str]]:
        """Stage name -> (object, method name) of each stage of the data path, in order, for
        :func:`detection.timing.stage_timer`."""


__all__ = ["Detector"]
