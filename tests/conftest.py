"""Shared test fixtures: paths to the reference material beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from regnet_explore.data.dataset import LyftData, NuScenesData
from regnet_explore.synthetic import synthesize

from .helpers import SHARED


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared (reference material) is not beside the repository")
    return SHARED


# Small synthetic sets shared by the data, training and notebook tests: 4 scenes x 3 key frames each; the nuScenes
# set holds both mini_val scenes, the Lyft set one val scene. Made once per test session.
SMALL_SETS = {"nuscenes": (4, 3), "lyft": (4, 3)}


@pytest.fixture(scope="session")
def nus_root(tmp_path_factory) -> Path:
    return synthesize("nuscenes", tmp_path_factory.mktemp("data") / "nuscenes-small", *SMALL_SETS["nuscenes"], seed=0)


@pytest.fixture(scope="session")
def lyft_root(tmp_path_factory) -> Path:
    return synthesize("lyft", tmp_path_factory.mktemp("data") / "lyft-small", *SMALL_SETS["lyft"], seed=0)


@pytest.fixture(scope="session")
def nusc(nus_root):
    from nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(nus_root), verbose=False)


@pytest.fixture(scope="module")
def nus_val(nus_root) -> NuScenesData:
    """The small nuScenes set's mini_val split."""
    return NuScenesData(nus_root, "v1.0-mini", "mini_val")


@pytest.fixture(scope="module")
def lyft_val(lyft_root) -> LyftData:
    """The small Lyft set's val split."""
    return LyftData(lyft_root, "v1.01-train", "val")
