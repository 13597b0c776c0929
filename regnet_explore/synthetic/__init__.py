"""Deterministic synthetic nuScenes and Lyft sets in the devkits' on-disk formats (no download): a simulated street
(:mod:`world`, placed by :mod:`priors`) scanned by a spinning LiDAR (:mod:`lidar`) in :mod:`scene`, written as the
devkits' tables (:mod:`tables`) and maps (:mod:`maps`) by :mod:`generate`, and kept by :mod:`store`."""

from regnet_explore.data.dataset import SYNTHETIC_MARKER
from regnet_explore.synthetic.config import FORMATS
from regnet_explore.synthetic.store import default_data_root, ensure_default_dataset, ensure_synthetic, synthesize

__all__ = ["FORMATS", "SYNTHETIC_MARKER", "default_data_root", "ensure_default_dataset", "ensure_synthetic",
           "synthesize"]
