"""Loaders and index: GT and sweeps as the devkits and mmdetection3d compute them, real data, one-line errors."""

from __future__ import annotations

import functools
import gc
import json
import shutil
import tracemalloc

import numpy as np
import pytest

from regnet_explore.data import index
from regnet_explore.data.dataset import LyftData, NuScenesData, open_dataset
from regnet_explore.data.geometry import quaternion_to_matrix
from regnet_explore.data.index import boxes_to_lidar, build_index
from regnet_explore.data.jsonstream import iter_json_array
from regnet_explore.data.multisweep import aggregate_sweeps
from regnet_explore.data.points import load_points_bin
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.global_boxes import lidar_to_global
from regnet_explore.synthetic import lidar, synthesize, world
from regnet_explore.synthetic.lidar import NUSCENES_LIDAR, cast
from regnet_explore.synthetic.priors import LYFT_PRIORS, NUSCENES_PRIORS

from .helpers import REAL_LYFT_TABLES


def _devkit_gt(db, sample_token: str, lidar_token: str, velocity: bool) -> dict[str, np.ndarray]:
    """The devkit's LiDAR-frame boxes of a sample, as mmdetection3d's info converter builds them."""
    _, boxes, _ = db.get_sample_data(lidar_token)
    sd = db.get("sample_data", lidar_token)
    cs = db.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = db.get("ego_pose", sd["ego_pose_token"])
    rot = quaternion_to_matrix(np.array(cs["rotation"])).T @ quaternion_to_matrix(np.array(pose["rotation"])).T
    out = {}
    for b in boxes:
        v = np.nan_to_num(db.box_velocity(b.token)) @ rot.T if velocity else np.zeros(3)
        out[b.token] = np.array([*b.center[:2], b.center[2] - b.wlh[2] / 2, b.wlh[1], b.wlh[0], b.wlh[2],
                                 b.orientation.yaw_pitch_roll[0], v[0], v[1]])
    return out


def test_gt_boxes_match_the_nuscenes_devkit(nus_root, nusc):
    data = NuScenesData(nus_root, "v1.0-mini", "mini_val")
    assert len(data) == 6 and {data.sample(i, with_points=False).scene for i in range(6)} == {"scene-0103",
                                                                                          "scene-0916"}
    for i in (0, 4):
        s = data.sample(i, with_points=False)
        ref = _devkit_gt(nusc, s.token, nusc.get("sample", s.token)["data"]["LIDAR_TOP"], velocity=True)
        kept = [a for a in nusc.get("sample", s.token)["anns"] if nusc.get("sample_annotation", a)["num_lidar_pts"]]
        assert len(s.gt_boxes) == len(kept) > 10 and s.gt_boxes.shape[1] == 9
        expected = np.array([ref[t] for t in sorted(kept)])
        assert np.allclose(s.gt_boxes, expected, atol=1e-3)
        assert (s.num_lidar_pts > 0).all()
        assert [data.class_names[k] for k in s.gt_labels] == s.gt_names


def test_sweeps_as_mmdetection3d_builds_them(nus_root, nusc):
    data = NuScenesData(nus_root, "v1.0-mini", "mini_val")
    s = data.sample(2)  # third key frame: 20 earlier scans, 10 used
    lags = np.unique(s.points[:, 4])
    assert np.allclose(lags, np.arange(11) * 0.05, atol=1e-6)
    assert s.points.dtype == np.float32 and s.points.shape[1] == 5
    key = nusc.get("sample_data", nusc.get("sample", s.token)["data"]["LIDAR_TOP"])
    sweep = nusc.get("sample_data", nusc.get("sample_data", key["prev"])["prev"])  # 0.1 s earlier
    raw = load_points_bin(nus_root / sweep["filename"])

    def pose(cs_or_pose):
        m = np.eye(4)
        m[:3, :3] = quaternion_to_matrix(np.array(cs_or_pose["rotation"]))
        m[:3, 3] = cs_or_pose["translation"]
        return m

    key_mat = pose(nusc.get("ego_pose", key["ego_pose_token"])) @ pose(
        nusc.get("calibrated_sensor", key["calibrated_sensor_token"]))
    sweep_mat = pose(nusc.get("ego_pose", sweep["ego_pose_token"])) @ pose(
        nusc.get("calibrated_sensor", sweep["calibrated_sensor_token"]))
    expected = raw[:, :3] @ (np.linalg.inv(key_mat) @ sweep_mat)[:3, :3].T + (np.linalg.inv(key_mat) @ sweep_mat)[:3, 3]
    got = s.points[np.isclose(s.points[:, 4], 0.1)]
    assert np.allclose(got[:, :3], expected, atol=1e-3) and np.allclose(got[:, 3], raw[:, 3])
    assert len(NuScenesData(nus_root, "v1.0-mini", "mini_val", sweeps=0).sample(2).points) == len(
        load_points_bin(nus_root / key["filename"]))


def test_lyft_loader_on_synthetic_and_real_tables(lyft_root, tmp_path):
    from lyft_dataset_sdk.lyftdataset import LyftDataset
    data = LyftData(lyft_root, "v1.01-train", "val")
    assert len(data) == 3
    s = data.sample(1)
    assert s.gt_boxes.shape[1] == 7 and set(s.gt_names) <= set(LyftData.class_names)
    assert np.unique(s.points[:, 4]).size == 11

    real = REAL_LYFT_TABLES
    data = LyftData(real, "v1.01-train", "val", index_path=tmp_path / "lyft.sqlite")
    assert len(data) == 1
    s = data.sample(0, with_points=False)
    lyftd = LyftDataset(str(real / "v1.01-train"), str(real / "v1.01-train" / "v1.01-train"), verbose=False)
    ref = _devkit_gt(lyftd, s.token, lyftd.get("sample", s.token)["data"]["LIDAR_TOP"], velocity=False)
    assert s.gt_names == ["car"] * 4
    assert np.allclose(s.gt_boxes, np.array([ref[t] for t in sorted(ref)])[:, :7], atol=1e-3)
    # The real set's point files are 100-byte stubs under other names: the error names the missing file, and a
    # stub read with the wrong point size names itself.
    stub = next((real / "lidar").glob("*.bin"))
    assert load_points_bin(stub).shape == (5, 5)
    with pytest.raises(RegNetExploreError, match=f"{stub.name}: 100 bytes"):
        load_points_bin(stub, load_dim=4)
    with pytest.raises(RegNetExploreError, match=r"lidar/host-a101_lidar1_\d+\.bin: no such point file"):
        data.sample(0)


def test_real_nuscenes_frame_through_loader_and_transforms(real_frame):
    ann = real_frame.annotations
    points = aggregate_sweeps(real_frame.path, [])
    assert points.shape == (34688, 5) and (points[:, 4] == 0).all()
    assert 0 <= points[:, 3].min() and points[:, 3].max() <= 255
    boxes = np.nan_to_num(np.array([[*i["box_lidar"], *i["velocity"]] for i in ann["instances"]], dtype=float))
    l2e, e2g = np.array(ann["lidar2ego"]), np.array(ann["ego2global"])
    g = lidar_to_global(boxes, np.ones(len(boxes)), np.zeros(len(boxes), int), l2e, e2g)
    back = boxes_to_lidar(g.translation, g.size, g.rotation, g.velocity, np.linalg.inv(e2g @ l2e))
    assert np.allclose(back[:, :6], boxes[:, :6], atol=1e-6)
    assert np.allclose(np.cos(back[:, 6] - boxes[:, 6]), 1, atol=1e-9)
    # The box yaw is only defined modulo the lidar's small tilt; the velocity loses its lidar-z component.
    assert np.allclose(back[:, 7:], boxes[:, 7:], atol=0.02 * np.abs(boxes[:, 7:]).max() + 1e-9)


def test_index_is_reused_and_rebuilt_on_change(nus_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(nus_root / "v1.0-mini", root / "v1.0-mini")
    index = tmp_path / "index.sqlite"
    NuScenesData(root, "v1.0-mini", index_path=index)
    stamp = index.stat().st_mtime_ns
    assert len(NuScenesData(root, "v1.0-mini", index_path=index)) == 12 and index.stat().st_mtime_ns == stamp
    samples = json.loads((root / "v1.0-mini" / "sample.json").read_text())
    (root / "v1.0-mini" / "sample.json").write_text(json.dumps(samples[:-1]))
    assert len(NuScenesData(root, "v1.0-mini", index_path=index)) == 11 and index.stat().st_mtime_ns != stamp


def test_index_build_memory_is_flat(tmp_path, monkeypatch):
    # A 64 kB read chunk (1 MB by default) so that both sets' tables exceed it.
    monkeypatch.setattr(index, "iter_json_array", functools.partial(iter_json_array, chunk=1 << 16))
    peaks = []
    for keyframes in (20, 20, 80):  # the first build warms up imports and caches and is not compared
        root = synthesize("nuscenes", tmp_path / f"n{keyframes}-{len(peaks)}", 2, keyframes, cast_lidar=False)
        gc.collect()
        tracemalloc.start()
        build_index(root / "v1.0-mini", tmp_path / f"i{keyframes}-{len(peaks)}.sqlite", "x")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[2] < 1.15 * peaks[1], peaks


def test_json_streaming(nus_root, tmp_path):
    path = nus_root / "v1.0-mini" / "sample_annotation.json"
    assert list(iter_json_array(path, chunk=61)) == json.loads(path.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text('[{"token": "a"}, {"token": ')
    with pytest.raises(RegNetExploreError, match="bad.json"):
        list(iter_json_array(bad, chunk=8))


def test_raycast_hits_a_box_at_its_distance():
    box = np.array([[20.0, 0.0, 0.0, 4.0, 2.0, 1.6, 0.0]])  # a car 20 m ahead (ego faces +x)
    scan = cast(NUSCENES_LIDAR, np.zeros(2), 0.0, box, np.array([0.5]), np.random.default_rng(0))
    ego = scan.points[:, :3] @ quaternion_to_matrix(np.array(NUSCENES_LIDAR.mount_rotation)).T + np.array(
        NUSCENES_LIDAR.mount_translation)
    on_box = (np.abs(ego[:, 0] - 18.0) < 0.1) & (np.abs(ego[:, 1]) < 1.0) & (ego[:, 2] > 0.05)
    assert scan.box_points[0] == on_box.sum() > 30 and scan.box_visibility[0] == 1.0
    ground = ego[:, 2] < 0.05
    assert np.abs(ego[ground, 2]).max() < 0.1  # ground returns lie on z = 0
    behind = (ego[:, 0] > 18.2) & (np.abs(ego[:, 1]) < 0.9) & (np.abs(np.arctan2(ego[:, 1], ego[:, 0])) < 0.04)
    assert not behind.any()  # the car's shadow


@pytest.mark.parametrize("case", ["dataroot", "version", "table", "token", "bin", "split"])
def test_bad_input_one_line_errors(case, nus_root, tmp_path):
    if case == "dataroot":
        with pytest.raises(RegNetExploreError, match="nowhere: no such directory"):
            NuScenesData(tmp_path / "nowhere", "v1.0-mini")
    elif case == "version":
        with pytest.raises(RegNetExploreError, match="'v1.0-mni'"):
            NuScenesData(nus_root, "v1.0-mni")
        with pytest.raises(RegNetExploreError, match="v1.0-trainval: no table folder.*found: v1.0-mini"):
            NuScenesData(nus_root, "v1.0-trainval")
    elif case == "table":
        shutil.copytree(nus_root / "v1.0-mini", tmp_path / "v1.0-mini")
        (tmp_path / "v1.0-mini" / "ego_pose.json").unlink()
        with pytest.raises(RegNetExploreError, match="ego_pose.json: missing table 'ego_pose'"):
            NuScenesData(tmp_path, "v1.0-mini", index_path=tmp_path / "i.sqlite")
        assert not (tmp_path / "i.sqlite").exists()
    elif case == "token":
        with pytest.raises(RegNetExploreError, match="sample token 'nope'"):
            NuScenesData(nus_root, "v1.0-mini").sample("nope")
    elif case == "bin":
        bad = tmp_path / "bad.pcd.bin"
        bad.write_bytes(np.zeros(7, np.float32).tobytes())
        with pytest.raises(RegNetExploreError, match="bad.pcd.bin: 28 bytes is not a whole number"):
            aggregate_sweeps(bad, [])
    else:
        with pytest.raises(RegNetExploreError, match="split 'val': not a split of v1.0-mini"):
            open_dataset("nuscenes", nus_root, split="val")


@pytest.mark.parametrize("fmt", ["nuscenes", "lyft"])
def test_sector_culling_changes_nothing(fmt, monkeypatch):
    spec, priors = (lidar.LYFT_LIDAR, LYFT_PRIORS) if fmt == "lyft" else (lidar.NUSCENES_LIDAR, NUSCENES_PRIORS)
    w = world.simulate_world(np.random.default_rng(7), priors, 1.0, np.array([100.0, 100.0]))
    boxes = np.concatenate([world.actor_boxes(w, 0.3)[0], w.clutter])
    refl = np.concatenate([w.actor_reflectivity, w.clutter_reflectivity])
    xy, yaw = world.ego_pose(w, 0.3)
    culled = cast(spec, xy, yaw, boxes, refl, np.random.default_rng(1))
    sectors = lidar._sectors

    def every_ray(*args):  # brute force: every box against every ray
        start, count, first, n = sectors(*args)
        return (np.zeros_like(start), np.full_like(count, spec.n_azimuth), np.zeros_like(first),
                np.full_like(n, len(spec.elevations_deg)))

    monkeypatch.setattr(lidar, "_sectors", every_ray)
    full = cast(spec, xy, yaw, boxes, refl, np.random.default_rng(1))
    assert np.array_equal(culled.points, full.points) and np.array_equal(culled.box_points, full.box_points)


def test_dataset_pickles_and_reconnects(nus_root):
    import pickle
    data = NuScenesData(nus_root, "v1.0-mini", "mini_val", sweeps=1)
    first = data.sample(1)
    clone = pickle.loads(pickle.dumps(data))  # as DataLoader workers receive it
    again = clone.sample(first.token)
    assert np.array_equal(again.points, first.points) and np.array_equal(again.gt_boxes, first.gt_boxes)
