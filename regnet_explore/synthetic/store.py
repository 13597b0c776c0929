"""Where synthetic sets are made: :func:`synthesize` at a folder of the user's choice, and the data cache of sets
made on first use (``<data root>/synthetic/``), made again when an older generator made them."""

from __future__ import annotations

import os
from pathlib import Path

from regnet_explore.data.dataset import SYNTHETIC_MARKER
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_folder
from regnet_explore.synthetic.config import DEFAULTS, SynthConfig, made_by_this_generator, synth_config
from regnet_explore.synthetic.generate import generate


def synthesize(fmt: str, out: str | os.PathLike, n_scenes: int | None = None, keyframes_per_scene: int | None = None,
               seed: int = 0, cast_lidar: bool = True) -> Path:
    """Generate a dataset at ``out`` atomically (built in a temporary sibling, then renamed); returns ``out``."""
    cfg = synth_config(fmt, n_scenes, keyframes_per_scene, seed, cast_lidar)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):  # even an earlier synthetic set, which atomic_folder would replace
        raise RegNetExploreError(f"{out}: output directory exists and is not empty; choose a new --out")
    with atomic_folder(out, SYNTHETIC_MARKER) as tmp:
        generate(cfg, tmp)
    return out


def default_data_root() -> Path:
    """``$REGNET_EXPLORE_DATA``, else ``data/`` of a source checkout, else ``~/.cache/regnet_explore``."""
    if os.environ.get("REGNET_EXPLORE_DATA"):
        return Path(os.environ["REGNET_EXPLORE_DATA"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / "data"
    return Path.home() / ".cache" / "regnet_explore"


def ensure_default_dataset(fmt: str, data_root: str | os.PathLike | None = None) -> Path:
    """Root of the default synthetic set ``<data_root>/synthetic/<fmt>-mini``, generated on first use (and again
    when it was made by another generator version)."""
    return ensure_synthetic(fmt, data_root=data_root)


def ensure_synthetic(fmt: str, n_scenes: int | None = None, keyframes_per_scene: int | None = None,
                     data_root: str | os.PathLike | None = None) -> Path:
    """Root of a synthetic set of the given size (seed 0) under ``<data_root>/synthetic/``, generated on first use
    (and again when it was made by another generator version): ``<fmt>-mini`` for the default size, else
    ``<fmt>-<scenes>x<key frames>``."""
    cfg = synth_config(fmt, n_scenes, keyframes_per_scene)
    out = (Path(data_root) if data_root is not None else default_data_root()) / "synthetic" / _cache_name(cfg)
    if made_by_this_generator(out):
        return out
    try:
        with atomic_folder(out, SYNTHETIC_MARKER) as tmp:
            generate(cfg, tmp)
    except OSError:
        if not made_by_this_generator(out):  # not a lost race against another process making the same set
            raise
    return out


def _cache_name(cfg: SynthConfig) -> str:
    if (cfg.n_scenes, cfg.keyframes_per_scene) == DEFAULTS[cfg.fmt]:
        return f"{cfg.fmt}-mini"
    return f"{cfg.fmt}-{cfg.n_scenes}x{cfg.keyframes_per_scene}"
