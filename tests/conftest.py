"""Shared test fixtures: paths to the reference material beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KEYS = SHARED / "reference" / "keys"


def read_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs of a reference key list (``key (d0, d1, ...)`` per line)."""
    out = []
    for line in (KEYS / name).read_text().splitlines():
        key, _, shape = line.partition(" ")
        out.append((key, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return out


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared (reference material) is not beside the repository")
    return SHARED
