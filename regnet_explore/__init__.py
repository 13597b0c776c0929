"""regnet_explore: RegNet design spaces, pycls/mmdetection conversion and PointPillars for LiDAR detection."""

from regnet_explore.errors import RegNetExploreError

__version__ = "0.1.0"
__all__ = ["RegNetExploreError", "__version__"]
