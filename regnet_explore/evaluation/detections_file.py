"""The one detections file: JSON lines, one key frame a line, in the LiDAR frame, labels indexing the dataset's
class names. ``regnet-explore test`` streams it (``detections.jsonl``, resumable), ``evaluate --detections`` reads it.

    {"token": "<sample token>", "box_dim": 7 | 9, "boxes": [K * box_dim floats], "scores": [K], "labels": [K]}

Boxes are x, y, z (bottom centre), l, w, h, yaw (and vx, vy); float32 values survive the text exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_write


def detections_line(token: str, det: Detections) -> str:
    """One key frame's line (``det.labels`` already index the dataset's classes)."""
    return json.dumps({"token": token, "box_dim": det.boxes.shape[1], "boxes": det.boxes.flatten().tolist(),
                       "scores": det.scores.tolist(), "labels": det.labels.tolist()}) + "\n"


def write_detections(path: str | os.PathLike, detections: Mapping[str, Detections]) -> Path:
    """A whole detections file, written atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text("".join(detections_line(token, det) for token, det in detections.items()))
    return Path(path)


def read_detections(path: str | os.PathLike, class_names: Sequence[str]) -> dict[str, Detections]:
    """A detections file as token -> validated :class:`Detections` (float32 values, as the detector made them)."""
    path = Path(path)
    if not path.is_file():
        raise RegNetExploreError(f"{path}: no such detections file")
    out = {}
    with open(path, "rb") as f:  # bytes: json.loads decodes each line, and a binary file fails as a record
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                boxes = np.asarray(row["boxes"], dtype=np.float32).reshape(-1, row["box_dim"])
                out[row["token"]] = Detections.from_arrays(boxes, np.asarray(row["scores"], dtype=np.float32),
                                                           row["labels"], class_names)
            except RegNetExploreError as e:  # a record that is not valid detections (it is a ValueError too)
                raise RegNetExploreError(f"{path}: line {n} (sample {row['token']}): {e}") from None
            except (ValueError, KeyError, TypeError) as e:
                raise RegNetExploreError(f"{path}: line {n} is not a detections record ({e}); a detections file "
                                         "is JSON lines as `regnet-explore test` writes them") from None
    return out


def done_tokens(path: Path) -> list[str]:
    """Tokens of the complete lines of a detections stream; a torn last line (a kill mid-write) is cut off."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with open(path, "r+b") as f:
            f.truncate(end)
    try:
        return [json.loads(line)["token"] for line in raw[:end].splitlines()]
    except (ValueError, KeyError) as e:
        raise RegNetExploreError(f"{path}: not a detections stream ({e}); start afresh without --resume") from None


__all__ = ["detections_line", "done_tokens", "read_detections", "write_detections"]
