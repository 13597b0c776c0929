"""Deterministic synthetic nuScenes and Lyft datasets in the exact on-disk formats of the official devkits.

nuScenes layout: ``<out>/<version>/*.json`` (13 tables), ``samples/LIDAR_TOP``, ``sweeps/LIDAR_TOP``, ``maps/``.
Up to 10 scenes use the real ``v1.0-mini`` scene names (so the devkit's ``mini_train``/``mini_val`` work), more
use ``v1.0-trainval`` names. Lyft layout: ``<out>/v1.01-train/{v1.01-train/*.json, lidar/, maps/}`` and
``<out>/{train,val}.txt``.
"""

from __future__ import annotations

from pathlib import Path

from regnet_explore.synthetic.config import SynthConfig, write_settings
from regnet_explore.synthetic.maps import map_half_width, write_maps
from regnet_explore.synthetic.scene import PRIORS, scene_duration, scene_names, write_scene
from regnet_explore.synthetic.tables import Tables, add_static_tables


def generate(cfg: SynthConfig, root: Path) -> None:
    """Write the dataset described by ``cfg`` into the (empty) directory ``root``."""
    w = Tables(cfg, root)
    add_static_tables(w, PRIORS[cfg.fmt])
    centre = map_half_width(scene_duration(cfg))
    roads = [write_scene(w, index, name, centre) for index, name in enumerate(scene_names(cfg))]
    write_maps(w, roads, 2 * centre)
    w.write()
    write_settings(cfg, root)
    if cfg.fmt == "lyft":
        _write_lyft_splits(scene_names(cfg), root)


def _write_lyft_splits(names: list[str], root: Path) -> None:
    val = set(names[1::4])
    (root / "train.txt").write_text("".join(f"{n}\n" for n in names if n not in val))
    (root / "val.txt").write_text("".join(f"{n}\n" for n in names if n in val))
