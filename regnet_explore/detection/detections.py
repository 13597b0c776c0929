"""The one detections type: boxes of one point cloud in its LiDAR frame, from the head's decoding to every view.

``boxes`` (K, 7 | 9) = x, y, z_bottom, l, w, h, yaw (from +x toward +y) [, vx, vy]; ``scores`` (K,) in [0, 1];
``labels`` (K,) int64 indices into ``class_names``. Tensors stay on the device they were decoded on; ``numpy()``
gives float64/int64 arrays for writers and views.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from regnet_explore.errors import RegNetExploreError

ArrayLike = np.ndarray | torch.Tensor | Sequence


def _tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _floats(x: ArrayLike) -> torch.Tensor:
    # float32 and float64 keep their precision (the devkit files must hold the same digits as the input); other
    # dtypes (integers, float16) become float64, which holds them exactly
    t = _tensor(x)
    return t if t.dtype in (torch.float32, torch.float64) else t.double()


@dataclass(frozen=True)
class Detections:
    """Boxes of one cloud in the LiDAR frame (see the module docstring for the layout)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, boxes: ArrayLike, scores: ArrayLike | None, labels: ArrayLike,
                    class_names: Sequence[str]) -> Detections:
        """From plain arrays or tensors, validated: boxes (K, 7 | 9) (an empty array is (0, 7)), scores (K,) or
        None (ground truth: scores of 1), labels (K,) in ``[0, len(class_names))``.

        float32 and float64 values are kept as they are; other number types become float64. Scores and labels
        follow the boxes' device.
        """
        try:
            boxes, labels = _floats(boxes), _tensor(labels).reshape(-1).long()
            scores = None if scores is None else _floats(scores).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as e:
            raise RegNetExploreError(f"detections: boxes, scores and labels must be numeric arrays ({e})") from None
        if boxes.ndim != 2 and not boxes.numel():
            boxes = boxes.reshape(0, 7)
        if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
            raise RegNetExploreError(f"detections: boxes {tuple(boxes.shape)}; need (K, 7 or 9)")
        scores = torch.ones(len(boxes), device=boxes.device) if scores is None else scores.to(boxes.device)
        labels = labels.to(boxes.device)
        if len(scores) != len(boxes) or len(labels) != len(boxes):
            raise RegNetExploreError(f"detections: {len(boxes)} boxes, scores {tuple(scores.shape)}, labels "
                                     f"{tuple(labels.shape)}; need one score and one label per box")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(class_names)):
            raise RegNetExploreError(f"detections: labels must lie in [0, {len(class_names)}) (the indices of "
                                     f"{tuple(class_names)}), got {int(labels.min())} to {int(labels.max())}")
        return cls(boxes, scores, labels, tuple(class_names))

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> list[str]:
        return [self.class_names[i] for i in self.labels.tolist()]

    def above(self, score_thr: float) -> Detections:
        """The boxes scoring at least ``score_thr``."""
        return self._select(self.scores >= score_thr)

    def of_classes(self, names: Collection[str]) -> Detections:
        """The boxes whose class is one of ``names``."""
        wanted = torch.tensor([n in names for n in self.class_names], dtype=torch.bool, device=self.labels.device)
        return self._select(wanted[self.labels])

    def cpu(self) -> Detections:
        return Detections(self.boxes.cpu(), self.scores.cpu(), self.labels.cpu(), self.class_names)

    def _select(self, keep: torch.Tensor) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names)

    def numpy(self) -> dict[str, np.ndarray]:
        """{'boxes' (K, 7|9) float64, 'scores' (K,) float64, 'labels' (K,) int64} on the CPU."""
        return {"boxes": self.boxes.detach().cpu().double().numpy(),
                "scores": self.scores.detach().cpu().double().numpy(),
                "labels": self.labels.detach().cpu().long().numpy()}

    def to_dict(self) -> dict:
        """JSON-ready lists."""
        return {"boxes": self.boxes.detach().cpu().tolist(), "scores": self.scores.detach().cpu().tolist(),
                "labels": self.labels.detach().cpu().tolist(), "names": self.names}


def match(reference: Detections, other: Detections, rtol: float = 1e-3) -> np.ndarray:
    """Per box of ``other``, whether it agrees with a box of ``reference`` of the same class in every box field
    and the score within ``rtol`` (relative; absolute for values under 1 in magnitude, such as yaw, velocities and
    scores near 0); each reference box is matched once (an optimal assignment)."""
    a, b = reference.cpu().numpy(), other.cpu().numpy()
    ref = np.concatenate([a["boxes"], a["scores"][:, None]], 1)
    new = np.concatenate([b["boxes"], b["scores"][:, None]], 1)
    if not len(ref) or not len(new):
        return np.zeros(len(new), dtype=bool)
    deviation = np.abs(new[:, None] - ref[None]) / np.maximum(np.abs(ref[None]), 1.0)  # (K_other, K_ref, fields)
    cost = deviation.max(-1)
    cost[b["labels"][:, None] != a["labels"][None]] = np.inf
    rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
    matched = np.zeros(len(new), dtype=bool)
    matched[rows] = cost[rows, cols] <= rtol
    return matched
