"""Synthetic nuScenes/Lyft sets: exact devkit formats, physical plausibility, determinism, atomic creation."""

from __future__ import annotations

import filecmp
import json
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from regnet_explore.data.classes import LYFT_CLASSES, NUSCENES_CLASSES
from regnet_explore.data.dataset import LyftData, NuScenesData
from regnet_explore.data.points import load_points_bin
from regnet_explore.errors import RegNetExploreError
from regnet_explore.synthetic import SYNTHETIC_MARKER, ensure_default_dataset, synthesize
from regnet_explore.synthetic.config import DEFAULTS, GENERATOR_VERSIONS

matplotlib.use("Agg")

HEIGHT_BINS = (-3.0, -2.0, -1.5, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)  # m, LiDAR frame z
DISTANCE_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0)  # m, BEV distance of an object's centre


def frame_stats(points: np.ndarray, boxes: np.ndarray, num_lidar_pts: np.ndarray, names: Sequence[str]) -> dict:
    """Points per frame, height histogram (fractions), range and intensity percentiles, and the median
    ``num_lidar_pts`` of cars and pedestrians per distance bin, for points (N, >=4) and boxes (G, >=7): to compare
    a synthetic frame with a real one."""
    distance = np.hypot(boxes[:, 0], boxes[:, 1])
    ranges = np.hypot(points[:, 0], points[:, 1])
    out = {"points": int(len(points)),
           "height_hist": (np.histogram(points[:, 2], bins=HEIGHT_BINS)[0] / max(len(points), 1)).round(3).tolist(),
           "range_pct_25_50_75_95": np.percentile(ranges, [25, 50, 75, 95]).round(1).tolist(),
           "intensity_pct_50_90_99": np.percentile(points[:, 3], [50, 90, 99]).round(1).tolist()}
    names = np.asarray(names)
    for cls in ("car", "pedestrian"):
        medians = []
        for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:]):
            sel = (names == cls) & (distance >= lo) & (distance < hi)
            medians.append(float(np.median(num_lidar_pts[sel])) if sel.any() else None)
        out[f"{cls}_pts_by_distance"] = medians
    return out

@pytest.fixture(scope="module")
def lyftd(lyft_root):
    from lyft_dataset_sdk.lyftdataset import LyftDataset
    return LyftDataset(str(lyft_root / "v1.01-train"), str(lyft_root / "v1.01-train" / "v1.01-train"), verbose=False)


def test_nuscenes_devkit_loads_and_renders(nusc, nus_root, tmp_path):
    import matplotlib.pyplot as plt
    assert len(nusc.scene) == 4 and len(nusc.sample) == 12
    assert {s["name"] for s in nusc.scene} >= {"scene-0103", "scene-0916"}
    sample = nusc.sample[4]
    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    assert lidar["is_key_frame"] and (nus_root / lidar["filename"]).is_file()
    out = tmp_path / "lidar.png"
    nusc.render_sample_data(lidar["token"], nsweeps=3, out_path=str(out), verbose=False)
    plt.close("all")
    assert out.stat().st_size > 10_000
    # 20 Hz scans, a key frame every tenth: 9 sweeps in between, 50 ms apart.
    chain, token = [], lidar["prev"]
    while token and not nusc.get("sample_data", token)["is_key_frame"]:
        chain.append(nusc.get("sample_data", token))
        token = chain[-1]["prev"]
    assert len(chain) == 9
    assert all(r["filename"].startswith("sweeps/LIDAR_TOP/") for r in chain)
    assert np.allclose(np.diff([r["timestamp"] for r in chain]), -50_000)


def test_lyft_sdk_loads_and_renders(lyftd, lyft_root, tmp_path):
    import matplotlib.pyplot as plt
    assert len(lyftd.sample) == 12 and len(lyftd.category) == 9
    token = lyftd.sample[5]["data"]["LIDAR_TOP"]
    out = lyftd.render_sample_data(token, out_path=str(tmp_path) + "/")
    plt.close("all")
    assert Path(out).stat().st_size > 10_000
    assert (lyft_root / "val.txt").read_text().split() and (lyft_root / "train.txt").read_text().split()


def test_every_class_present_with_moving_and_static_objects(nusc, lyftd):
    from nuscenes.eval.detection.utils import category_to_detection_name
    for db, classes in ((nusc, NUSCENES_CLASSES), (lyftd, LYFT_CLASSES)):
        names = {category_to_detection_name(c["name"]) or c["name"] for c in db.category}
        assert names == set(classes)
        annotated = {db.get("category", db.get("instance", a["instance_token"])["category_token"])["name"]
                     for a in db.sample_annotation if a["num_lidar_pts"] > 0}
        assert len(annotated) == len(classes)
        speeds = np.array([np.linalg.norm(np.nan_to_num(db.box_velocity(a["token"]))[:2])
                           for a in db.sample_annotation[::5]])
        assert (speeds > 1).sum() > 5 and (speeds < 0.05).sum() > 5


def test_beams_and_points_match_the_sensors(nus_root, lyft_root):
    nus = load_points_bin(next((nus_root / "samples" / "LIDAR_TOP").iterdir()))
    lyft = load_points_bin(next((lyft_root / "v1.01-train" / "lidar").iterdir()))
    assert set(np.unique(nus[:, 4]).astype(int)) <= set(range(32)) and len(np.unique(nus[:, 4])) >= 30
    assert len(np.unique(lyft[:, 4])) >= 60
    assert 0 <= nus[:, 3].min() and nus[:, 3].max() <= 255
    assert 20_000 < len(nus) < 40_000 and len(lyft) > len(nus)


def test_occlusion_and_range_falloff(nusc):
    anns = [a for a in nusc.sample_annotation if a["visibility_token"]]
    pts = np.array([a["num_lidar_pts"] for a in anns])
    dist = []
    for a in anns:
        pose = nusc.get("ego_pose", nusc.get("sample_data", nusc.get("sample", a["sample_token"])["data"]
                                             ["LIDAR_TOP"])["ego_pose_token"])
        dist.append(np.hypot(*(np.array(a["translation"][:2]) - pose["translation"][:2])))
    dist = np.array(dist)
    near, far = pts[dist < 20], pts[(dist > 40) & (dist < 70)]
    assert np.median(near) > 5 * max(np.median(far), 1)
    # Objects in range but hidden behind others: no points, lowest visibility level.
    hidden = [a for a, d in zip(anns, dist) if d < 30 and a["num_lidar_pts"] == 0]
    assert hidden and all(a["visibility_token"] == "1" for a in hidden)


def test_real_and_synthetic_frames_in_the_same_regime(real_frame, nus_root):
    ann = real_frame.annotations
    real_pts = real_frame.points
    boxes = np.array([i["box_lidar"] for i in ann["instances"]])
    real = frame_stats(real_pts, boxes, np.array([i["num_lidar_pts"] for i in ann["instances"]]),
                       [i["category"] for i in ann["instances"]])
    data = NuScenesData(nus_root, "v1.0-mini")
    s = data.sample(4, with_points=False)
    synth = frame_stats(load_points_bin(s.lidar_path), s.gt_boxes, s.num_lidar_pts, s.gt_names)
    assert 0.75 < synth["points"] / real["points"] < 1.25
    assert np.abs(np.array(synth["height_hist"]) - real["height_hist"]).sum() < 0.35
    assert abs(synth["range_pct_25_50_75_95"][3] - real["range_pct_25_50_75_95"][3]) < 10


def test_generation_is_deterministic(tmp_path):
    a = synthesize("nuscenes", tmp_path / "a", 1, 2, seed=3)
    b = synthesize("nuscenes", tmp_path / "b", 1, 2, seed=3)
    c = synthesize("nuscenes", tmp_path / "c", 1, 2, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 13 + 11 + 1 + 1  # tables, scans, map, synthetic.json
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)
    assert not filecmp.cmp(a / "v1.0-mini" / "sample_annotation.json", c / "v1.0-mini" / "sample_annotation.json",
                           shallow=False)


def test_bad_requests_write_nothing(tmp_path):
    with pytest.raises(RegNetExploreError, match="kitti"):
        synthesize("kitti", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(RegNetExploreError, match="not empty"):
        synthesize("lyft", tmp_path / "full", 1, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["full"]


def test_default_dataset_made_once_atomically(tmp_path, monkeypatch):
    monkeypatch.setitem(DEFAULTS, "lyft", (1, 2))
    root = ensure_default_dataset("lyft", tmp_path)
    assert root == tmp_path / "synthetic" / "lyft-mini"
    assert LyftData(root, "v1.01-train").tokens
    stamp = (root / "v1.01-train" / "v1.01-train" / "sample.json").stat().st_mtime_ns
    assert ensure_default_dataset("lyft", tmp_path) == root
    assert (root / "v1.01-train" / "v1.01-train" / "sample.json").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == ["lyft-mini"]  # no temporary left
    marker = root / SYNTHETIC_MARKER
    version = GENERATOR_VERSIONS["lyft"]
    marker.write_text(marker.read_text().replace(f'"generator": {version}', '"generator": 0'))  # an older set
    ensure_default_dataset("lyft", tmp_path)
    assert (root / "v1.01-train" / "v1.01-train" / "sample.json").stat().st_mtime_ns != stamp
    assert json.loads(marker.read_text())["generator"] == version
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == ["lyft-mini"]


def test_lyft_traffic_reaches_past_80_m_and_is_seen():
    """Lyft's default val split (what the shipped weights are scored on): at least 5 % of its objects beyond the
    +-80 m grid, all within the 96 m annotation reach, every instance seen by the LiDAR in some key frame."""
    val = LyftData(ensure_default_dataset("lyft"), "v1.01-train", "val")
    samples = [val.sample(t, with_points=False) for t in val.tokens]
    reach = np.concatenate([np.abs(s.gt_boxes[:, :2]).max(1) for s in samples])
    assert (reach > 80).mean() >= 0.05 and reach.max() < 100
    points: dict[str, int] = {}  # per instance: the most points it gets in any key frame
    for a in json.loads((val.tables_dir / "sample_annotation.json").read_text()):
        points[a["instance_token"]] = max(points.get(a["instance_token"], 0), a["num_lidar_pts"])
    assert min(points.values()) > 0


@pytest.mark.slow
def test_default_sets_are_made_well_under_a_minute(tmp_path):
    t0 = time.perf_counter()
    for fmt in ("nuscenes", "lyft"):
        root = ensure_default_dataset(fmt, tmp_path)
        data = NuScenesData(root, "v1.0-mini") if fmt == "nuscenes" else LyftData(root, "v1.01-train")
        assert len(data) >= 20
    assert time.perf_counter() - t0 < 60
