"""Checkpoints trained by this package on its synthetic data, shipped inside it (see weights/README.md)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def shipped_checkpoint(config_name: str) -> Path | None:
    """The shipped checkpoint for a detector config name (``<name>_synthetic.pth``), or None."""
    path = WEIGHTS_DIR / f"{config_name}_synthetic.pth"
    return path if path.is_file() else None
