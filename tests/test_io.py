"""``io.atomic_folder``: a folder appears whole, on disk, or not at all."""

from __future__ import annotations

import os

import pytest

from regnet_explore import io
from regnet_explore.errors import RegNetExploreError


def test_atomic_folder_puts_every_nested_file_on_disk_before_the_swap(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(io.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    out = tmp_path / "set"
    with io.atomic_folder(out, "marker.json") as tmp:
        (tmp / "marker.json").write_text("{}")
        (tmp / "samples" / "LIDAR_TOP").mkdir(parents=True)
        (tmp / "samples" / "LIDAR_TOP" / "a.bin").write_bytes(b"x")
        assert not out.exists()
    names = {os.path.relpath(p, tmp) for p in synced}
    assert {"marker.json", "samples", os.path.join("samples", "LIDAR_TOP"),
            os.path.join("samples", "LIDAR_TOP", "a.bin"), "."} <= names
    assert (out / "samples" / "LIDAR_TOP" / "a.bin").read_bytes() == b"x"


def test_atomic_folder_leaves_the_old_folder_on_error_and_refuses_a_users_folder(tmp_path):
    out = tmp_path / "set"
    with io.atomic_folder(out, "marker.json") as tmp:
        (tmp / "marker.json").write_text("1")
    with pytest.raises(ValueError), io.atomic_folder(out, "marker.json") as tmp:
        (tmp / "marker.json").write_text("2")
        raise ValueError("a failed generation")
    assert (out / "marker.json").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temporary left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RegNetExploreError, match="without marker.json"), io.atomic_folder(mine, "marker.json"):
        pass
    assert (mine / "notes.txt").read_text() == "keep"
