"""Checkpoints trained by this package on its synthetic data, shipped inside it (see weights/README.md)."""

from __future__ import annotations

from pathlib import Path

from regnet_explore.detection.configs import CONFIGS, DetectorConfig, get_config

WEIGHTS_DIR = Path(__file__).resolve().parent


def _network(cfg: DetectorConfig) -> tuple:
    """What the weights depend on: every module and the anchor shapes, not the BEV range or the batch."""
    return (cfg.dataset, cfg.class_names, cfg.encoder, cfg.backbone, cfg.neck, cfg.anchors.sizes,
            cfg.anchors.rotations, cfg.code_size)


def shipped_checkpoint(config_name: str) -> Path | None:
    """The shipped checkpoint for a detector config (``<name>_synthetic.pth``), or None.

    Configs that differ from a shipped one only in range or batch (Lyft ``range100``, the nuScenes ``fp16`` row) run
    the same network, so they share its weights.
    """
    cfg = get_config(config_name)
    candidates = [cfg.name] + [name for name, other in CONFIGS.items()
                               if name != cfg.name and _network(other) == _network(cfg)]
    for name in candidates:
        path = WEIGHTS_DIR / f"{name}_synthetic.pth"
        if path.is_file():
            return path
    return None
