"""Deterministic synthetic nuScenes and Lyft sets in the devkits' on-disk formats (no download): a simulated street
(:mod:`world`, placed by :mod:`priors`) scanned by a spinning LiDAR (:mod:`lidar`), written by :mod:`generate`."""

from regnet_explore.synthetic.generate import (
    FORMATS,
    SYNTHETIC_MARKER,
    default_data_root,
    ensure_default_dataset,
    ensure_synthetic,
    synthesize,
)

__all__ = ["FORMATS", "SYNTHETIC_MARKER", "default_data_root", "ensure_default_dataset", "ensure_synthetic",
           "synthesize"]
