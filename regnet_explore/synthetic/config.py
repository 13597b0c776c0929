"""What a synthetic set is made from (format, size, seed), and the record of it kept at its root."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from regnet_explore.data.dataset import SYNTHETIC_MARKER
from regnet_explore.errors import RegNetExploreError

FORMATS = ("nuscenes", "lyft")
DEFAULTS = {"nuscenes": (10, 4), "lyft": (6, 4)}  # (scenes, key frames per scene): 40 and 24 key frames
# Per format; bump when the output changes: default sets of another version are made again.
GENERATOR_VERSIONS = {"nuscenes": 1, "lyft": 2}
MINI_SCENES = ("scene-0061", "scene-0103", "scene-0553", "scene-0916", "scene-0655", "scene-0757", "scene-0796",
               "scene-1077", "scene-1094", "scene-1100")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``cast_lidar=False`` writes the tables only (no point files; for index benchmarks)."""
    fmt: str
    n_scenes: int
    keyframes_per_scene: int
    seed: int = 0
    cast_lidar: bool = True

    @property
    def version(self) -> str:
        if self.fmt == "lyft":
            return "v1.01-train"
        return "v1.0-mini" if self.n_scenes <= len(MINI_SCENES) else "v1.0-trainval"


def synth_config(fmt: str, n_scenes: int | None = None, keyframes_per_scene: int | None = None, seed: int = 0,
                 cast_lidar: bool = True) -> SynthConfig:
    """The request as a :class:`SynthConfig`, the format's default size where none is given."""
    if fmt not in FORMATS:
        raise RegNetExploreError(f"--format {fmt!r}: unknown dataset format; choose one of {', '.join(FORMATS)}")
    scenes, keys = DEFAULTS[fmt]
    cfg = SynthConfig(fmt, n_scenes or scenes, keyframes_per_scene or keys, seed, cast_lidar)
    if cfg.n_scenes < 1 or cfg.keyframes_per_scene < 1:
        raise RegNetExploreError(f"synthetic {fmt}: need at least one scene and one key frame, got "
                                 f"{cfg.n_scenes} scenes x {cfg.keyframes_per_scene} key frames")
    return cfg


def write_settings(cfg: SynthConfig, root: Path) -> None:
    """The settings a set was made with, and the generator version, as ``root/synthetic.json``."""
    settings = {**asdict(cfg), "version": cfg.version, "generator": GENERATOR_VERSIONS[cfg.fmt]}
    (root / SYNTHETIC_MARKER).write_text(json.dumps(settings, indent=1) + "\n")


def made_by_this_generator(root: Path) -> bool:
    """Whether ``root`` holds a set made by the current generator version of its format."""
    try:
        settings = json.loads((root / SYNTHETIC_MARKER).read_text())
        return settings.get("generator") == GENERATOR_VERSIONS.get(settings.get("fmt"))
    except (OSError, ValueError):
        return False
