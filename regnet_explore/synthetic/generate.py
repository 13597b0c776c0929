"""Deterministic synthetic nuScenes and Lyft datasets in the exact on-disk formats of the official devkits.

Each scene simulates a street (:mod:`world`) and scans it with a spinning LiDAR (:mod:`lidar`) at 20 Hz; every
tenth scan is a key frame (2 Hz) with annotations whose ``num_lidar_pts`` and visibility come from the scan.

nuScenes layout: ``<out>/<version>/*.json`` (13 tables), ``samples/LIDAR_TOP``, ``sweeps/LIDAR_TOP``, ``maps/``.
Up to 10 scenes use the real ``v1.0-mini`` scene names (so the devkit's ``mini_train``/``mini_val`` work), more
use ``v1.0-trainval`` names. Lyft layout: ``<out>/v1.01-train/{v1.01-train/*.json, lidar/, maps/}`` and
``<out>/{train,val}.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from regnet_explore.data.classes import NUSCENES_ATTRIBUTES, NUSCENES_VISIBILITY
from regnet_explore.data.dataset import SYNTHETIC_MARKER
from regnet_explore.data.geometry import yaw_to_quaternion
from regnet_explore.errors import RegNetExploreError
from regnet_explore.synthetic.lidar import LYFT_LIDAR, NUSCENES_LIDAR, LidarSpec, cast
from regnet_explore.synthetic.priors import LYFT_PRIORS, NUSCENES_PRIORS, ObjectPrior
from regnet_explore.synthetic.world import World, actor_boxes, ego_pose, road_pose, simulate_world

FORMATS = ("nuscenes", "lyft")
SCAN_HZ, SCANS_PER_KEYFRAME = 20, 10
MAP_RESOLUTION = 0.1
ROAD_WIDTH = 14.0
MINI_SCENES = ("scene-0061", "scene-0103", "scene-0553", "scene-0916", "scene-0655", "scene-0757", "scene-0796",
               "scene-1077", "scene-1094", "scene-1100")
NUSCENES_LOCATIONS = ("singapore-onenorth", "boston-seaport", "singapore-queenstown", "singapore-hollandvillage")
LYFT_ATTRIBUTES = ("object_action_driving_straight_forward", "object_action_parked", "object_action_stopped",
                   "object_action_walking", "object_action_standing", "is_stationary")
CYCLES = ("bicycle", "motorcycle")
# Per format; bump when the output changes: default sets of another version are made again.
GENERATOR_VERSIONS = {"nuscenes": 1, "lyft": 2}
# How far along the road actors start from the ego path (m). nuScenes evaluates to 50 m at most. Lyft annotates
# out to the 64-beam LiDAR's reach and scores every box at any distance (mmdetection3d's range100 configurations
# exist for that), so its traffic continues past the +-80 m window at the same density (0.8 x 120 m = 96 m
# annotated; generator version 2).
ACTOR_REACH = {"nuscenes": 50.0, "lyft": 100.0}
# Formats whose instances are annotated only when the LiDAR returns a point from them in some key frame of the
# scene (then in every key frame, occluded or not, as a tracked instance): without it a long reach adds boxes hidden
# behind buildings where the road bends, which no annotator would draw.
SEEN_ONLY = ("lyft",)
STATIC = ("traffic_cone", "barrier")


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


DEFAULTS = {"nuscenes": (10, 4), "lyft": (6, 4)}  # (scenes, key frames per scene): 40 and 24 key frames


def _token(fmt: str, *parts: object) -> str:
    text = "|".join(str(p) for p in parts).encode()
    return hashlib.sha256(text).hexdigest() if fmt == "lyft" else hashlib.md5(text).hexdigest()


def _scene_names(cfg: SynthConfig) -> list[str]:
    if cfg.fmt == "lyft":
        return [f"host-a9{i // 100:02d}-lidar0-{1240000000 + 100 * i}-{1240000020 + 100 * i}"
                for i in range(cfg.n_scenes)]
    if cfg.version == "v1.0-mini":
        return list(MINI_SCENES[:cfg.n_scenes])
    from nuscenes.utils.splits import create_splits_scenes
    splits = create_splits_scenes()
    train, val = iter(splits["train"]), iter(splits["val"])
    return [next(val) if i % 5 == 1 else next(train) for i in range(cfg.n_scenes)]


def _attributes(fmt: str, prior: ObjectPrior, speed: float, parked: bool) -> list[str]:
    moving = abs(speed) > 0.5
    if prior.name in STATIC:
        return []
    if fmt == "lyft":
        if prior.name in ("pedestrian", "animal"):
            return ["object_action_walking" if moving else "object_action_standing"]
        if moving:
            return ["object_action_driving_straight_forward"]
        return ["object_action_parked" if parked else "object_action_stopped"]
    if prior.name == "pedestrian":
        return ["pedestrian.moving" if moving else "pedestrian.standing"]
    if prior.name in CYCLES:
        return ["cycle.with_rider" if moving else "cycle.without_rider"]
    return ["vehicle.moving" if moving else "vehicle.parked" if parked else "vehicle.stopped"]


def _visibility(fraction: float) -> str:
    return NUSCENES_VISIBILITY[int(np.clip(np.searchsorted([0.4, 0.6, 0.8], fraction, side="right"), 0, 3))][0]


class _Writer:
    """Accumulates table records; writes them, point files and maps under one root."""

    def __init__(self, cfg: SynthConfig, root: Path):
        self.cfg, self.root = cfg, root
        self.data_root = root / "v1.01-train" if cfg.fmt == "lyft" else root
        self.table_dir = self.data_root / cfg.version
        self.tables: dict[str, list[dict]] = {name: [] for name in (
            "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
            "scene", "sample", "sample_data", "sample_annotation", "map")}
        self.token: Callable[..., str] = lambda *parts: _token(cfg.fmt, cfg.seed, *parts)

    def write_points(self, relative: str, points: np.ndarray) -> None:
        path = self.data_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        points.astype(np.float32).tofile(path)

    def write_tables(self) -> None:
        self.table_dir.mkdir(parents=True, exist_ok=True)
        for name, records in self.tables.items():
            with open(self.table_dir / f"{name}.json", "w") as f:
                json.dump(records, f, separators=(",", ":"))


def _static_tables(w: _Writer, priors: tuple[ObjectPrior, ...]) -> dict[str, str]:
    """Category, attribute, visibility and sensor records; returns name -> token for categories/attributes."""
    tokens = {}
    for prior in priors:
        tokens[prior.category] = w.token("category", prior.category)
        w.tables["category"].append({"token": tokens[prior.category], "name": prior.category,
                                     "description": f"synthetic {prior.name}"})
    for name in (LYFT_ATTRIBUTES if w.cfg.fmt == "lyft" else NUSCENES_ATTRIBUTES):
        tokens[name] = w.token("attribute", name)
        w.tables["attribute"].append({"token": tokens[name], "name": name, "description": ""})
    for token, level in NUSCENES_VISIBILITY:
        w.tables["visibility"].append({"token": token, "level": level, "description": f"visibility {level}"})
    tokens["LIDAR_TOP"] = w.token("sensor", "LIDAR_TOP")
    w.tables["sensor"].append({"token": tokens["LIDAR_TOP"], "channel": "LIDAR_TOP", "modality": "lidar"})
    return tokens


def _lidar_filename(cfg: SynthConfig, log_name: str, timestamp: int, key: bool) -> str:
    if cfg.fmt == "lyft":
        return f"lidar/{log_name}_lidar1_{timestamp}.bin"
    folder = "samples" if key else "sweeps"
    return f"{folder}/LIDAR_TOP/{log_name}__LIDAR_TOP__{timestamp}.pcd.bin"


def _scene(w: _Writer, tokens: dict[str, str], index: int, name: str, location: str, world: World,
           spec: LidarSpec, rng: np.random.Generator) -> np.ndarray:
    """Write one scene's records and point files; returns its road centre line (M, 2) for the map."""
    cfg = w.cfg
    n_scans = (cfg.keyframes_per_scene - 1) * SCANS_PER_KEYFRAME + 1
    start_us = 1_533_000_000_000_000 + index * 100_000_000
    log_name = f"synth-{cfg.fmt}-{cfg.seed}-{index:04d}"
    log_token, scene_token = w.token("log", index), w.token("scene", index)
    calib_token = w.token("calibrated_sensor", index)
    w.tables["log"].append({"token": log_token, "logfile": log_name, "vehicle": "synthetic",
                            "date_captured": "2018-08-01", "location": location})
    w.tables["calibrated_sensor"].append({"token": calib_token, "sensor_token": tokens["LIDAR_TOP"],
                                          "translation": list(spec.mount_translation),
                                          "rotation": list(spec.mount_rotation), "camera_intrinsic": []})
    key_times = [k * SCANS_PER_KEYFRAME / SCAN_HZ for k in range(cfg.keyframes_per_scene)]
    sample_tokens = [w.token("sample", index, k) for k in range(cfg.keyframes_per_scene)]
    sd_tokens = [w.token("sample_data", index, j) for j in range(n_scans)]
    keys = []  # (timestamp, boxes, scan) of each key frame
    for j in range(n_scans):
        t = j / SCAN_HZ
        timestamp = start_us + round(t * 1e6)
        key = j % SCANS_PER_KEYFRAME == 0
        k = -(-j // SCANS_PER_KEYFRAME)  # the key frame at or after this scan
        xy, yaw = ego_pose(world, t)
        pose_token = w.token("ego_pose", index, j)
        w.tables["ego_pose"].append({"token": pose_token, "timestamp": timestamp, "translation": [*xy, 0.0],
                                     "rotation": yaw_to_quaternion(yaw).tolist()})
        filename = _lidar_filename(cfg, log_name, timestamp, key)
        w.tables["sample_data"].append({
            "token": sd_tokens[j], "sample_token": sample_tokens[k], "ego_pose_token": pose_token,
            "calibrated_sensor_token": calib_token, "timestamp": timestamp,
            "fileformat": "bin" if cfg.fmt == "lyft" else "pcd", "is_key_frame": key, "height": 0, "width": 0,
            "filename": filename, "prev": sd_tokens[j - 1] if j else "",
            "next": sd_tokens[j + 1] if j + 1 < n_scans else ""})
        boxes, _ = actor_boxes(world, t)
        scan = None
        if cfg.cast_lidar:
            scan = cast(spec, xy, yaw, np.concatenate([boxes, world.clutter]),
                        np.concatenate([world.actor_reflectivity, world.clutter_reflectivity]), rng)
            w.write_points(filename, scan.points)
        if key:
            keys.append((timestamp, boxes, scan))

    ego_at_keys = np.array([ego_pose(world, t)[0] for t in key_times])
    dist = np.stack([np.hypot(*(b[:, :2] - e).T) for (_, b, _), e in zip(keys, ego_at_keys)])
    near = dist.min(0) < spec.max_range * 0.8
    if cfg.fmt in SEEN_ONLY and cfg.cast_lidar:
        near &= np.stack([scan.box_points[:len(near)] for _, _, scan in keys]).max(0) > 0
    annotated = np.flatnonzero(near)
    ann_tokens = {(a, k): w.token("ann", index, a, k) for a in annotated for k in range(cfg.keyframes_per_scene)}
    for k, (timestamp, boxes, scan) in enumerate(keys):
        _keyframe(w, tokens, index, k, sample_tokens, scene_token, timestamp, world, boxes, annotated, ann_tokens,
                  scan)

    w.tables["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": cfg.keyframes_per_scene,
                              "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                              "name": name, "description": f"synthetic street, seed {cfg.seed}"})
    for a in annotated:
        prior = world.priors[world.actor_class[a]]
        w.tables["instance"].append({"token": w.token("instance", index, a),
                                     "category_token": tokens[prior.category],
                                     "nbr_annotations": cfg.keyframes_per_scene,
                                     "first_annotation_token": ann_tokens[(a, 0)],
                                     "last_annotation_token": ann_tokens[(a, cfg.keyframes_per_scene - 1)]})
    s = np.linspace(world.ego_s0 - 120, world.ego_s0 + world.ego_speed * key_times[-1] + 120, 60)
    return road_pose(world.road, s, np.zeros_like(s))[0]


def _keyframe(w: _Writer, tokens: dict[str, str], index: int, k: int, sample_tokens: list[str], scene_token: str,
              timestamp: int, world: World, boxes: np.ndarray, annotated: np.ndarray,
              ann_tokens: dict[tuple[int, int], str], scan) -> None:
    n_keys = len(sample_tokens)
    w.tables["sample"].append({"token": sample_tokens[k], "timestamp": timestamp, "scene_token": scene_token,
                               "prev": sample_tokens[k - 1] if k else "",
                               "next": sample_tokens[k + 1] if k + 1 < n_keys else ""})
    for a in annotated:
        prior = world.priors[world.actor_class[a]]
        x, y, z, length, width, h, yaw = boxes[a]
        points = int(scan.box_points[a]) if scan is not None else 1
        visibility = _visibility(scan.box_visibility[a]) if scan is not None else "4"
        attrs = _attributes(w.cfg.fmt, prior, world.actor_speed[a], bool(world.actor_parked[a]))
        w.tables["sample_annotation"].append({
            "token": ann_tokens[(a, k)], "sample_token": sample_tokens[k],
            "instance_token": w.token("instance", index, a), "visibility_token": visibility,
            "attribute_tokens": [tokens[n] for n in attrs], "translation": [x, y, z + h / 2],
            "size": [width, length, h],
            "rotation": yaw_to_quaternion(yaw).tolist(), "prev": ann_tokens[(a, k - 1)] if k else "",
            "next": ann_tokens[(a, k + 1)] if k + 1 < n_keys else "", "num_lidar_pts": points,
            "num_radar_pts": 0})


def _write_maps(w: _Writer, roads: list[np.ndarray], size_m: float) -> None:
    """One semantic-prior raster per scene log (0.1 m/pixel, 255 = drivable road), as the devkits' MapMask reads."""
    from PIL import Image, ImageDraw
    pixels = int(np.ceil(size_m / MAP_RESOLUTION))
    for index, line in enumerate(roads):
        image = Image.new("L", (pixels, pixels), 0)
        px = np.stack([line[:, 0] / MAP_RESOLUTION, pixels - line[:, 1] / MAP_RESOLUTION], -1)
        ImageDraw.Draw(image).line([tuple(p) for p in px], fill=255, width=int(ROAD_WIDTH / MAP_RESOLUTION))
        token = w.token("map", index)
        filename = f"maps/{token}.png" if w.cfg.fmt != "lyft" else f"maps/map_raster_synthetic_{index:04d}.png"
        (w.data_root / "maps").mkdir(parents=True, exist_ok=True)
        image.save(w.data_root / filename, compress_level=1)
        w.tables["map"].append({"token": token, "filename": filename, "category": "semantic_prior",
                                "log_tokens": [w.token("log", index)]})


def generate(cfg: SynthConfig, root: Path) -> None:
    """Write the dataset described by ``cfg`` into the (empty) directory ``root``."""
    priors, spec = (LYFT_PRIORS, LYFT_LIDAR) if cfg.fmt == "lyft" else (NUSCENES_PRIORS, NUSCENES_LIDAR)
    w = _Writer(cfg, root)
    tokens = _static_tables(w, priors)
    duration = (cfg.keyframes_per_scene - 1) * SCANS_PER_KEYFRAME / SCAN_HZ
    reach = 200.0 + 11.0 * duration  # every road and scan stays inside the map raster
    locations = ("palo_alto",) if cfg.fmt == "lyft" else NUSCENES_LOCATIONS
    roads = []
    for index, name in enumerate(_scene_names(cfg)):
        rng = np.random.default_rng([cfg.seed, index])
        location = locations[index % len(locations)]
        world = simulate_world(rng, priors, duration, origin=np.array([reach, reach]) + rng.uniform(-10, 10, 2),
                               reach=ACTOR_REACH[cfg.fmt])
        roads.append(_scene(w, tokens, index, name, location, world, spec, rng))
    _write_maps(w, roads, 2 * reach)
    w.write_tables()
    settings = {**asdict(cfg), "version": cfg.version, "generator": GENERATOR_VERSIONS[cfg.fmt]}
    (root / SYNTHETIC_MARKER).write_text(json.dumps(settings, indent=1) + "\n")
    if cfg.fmt == "lyft":
        names = _scene_names(cfg)
        val = set(names[1::4])
        (root / "train.txt").write_text("".join(f"{n}\n" for n in names if n not in val))
        (root / "val.txt").write_text("".join(f"{n}\n" for n in names if n in val))


def synthesize(fmt: str, out: str | os.PathLike, n_scenes: int | None = None, keyframes_per_scene: int | None = None,
               seed: int = 0, cast_lidar: bool = True) -> Path:
    """Generate a dataset at ``out`` atomically (built in a temporary sibling, then renamed); returns ``out``."""
    if fmt not in FORMATS:
        raise RegNetExploreError(f"--format {fmt!r}: unknown dataset format; choose one of {', '.join(FORMATS)}")
    scenes, keys = DEFAULTS[fmt]
    cfg = SynthConfig(fmt, n_scenes or scenes, keyframes_per_scene or keys, seed, cast_lidar)
    if cfg.n_scenes < 1 or cfg.keyframes_per_scene < 1:
        raise RegNetExploreError(f"synthetic {fmt}: need at least one scene and one key frame, got "
                                 f"{cfg.n_scenes} scenes x {cfg.keyframes_per_scene} key frames")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RegNetExploreError(f"{out}: output directory exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        generate(cfg, tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_data_root() -> Path:
    """``$REGNET_EXPLORE_DATA``, else ``data/`` of a source checkout, else ``~/.cache/regnet_explore``."""
    if os.environ.get("REGNET_EXPLORE_DATA"):
        return Path(os.environ["REGNET_EXPLORE_DATA"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / "data"
    return Path.home() / ".cache" / "regnet_explore"


def _current(root: Path) -> bool:
    try:
        settings = json.loads((root / SYNTHETIC_MARKER).read_text())
        return settings.get("generator") == GENERATOR_VERSIONS.get(settings.get("fmt"))
    except (OSError, ValueError):
        return False


def ensure_default_dataset(fmt: str, data_root: str | os.PathLike | None = None) -> Path:
    """Root of the default synthetic set ``<data_root>/synthetic/<fmt>-mini``, generated on first use (and again
    when it was made by another generator version)."""
    return ensure_synthetic(fmt, data_root=data_root)


def ensure_synthetic(fmt: str, n_scenes: int | None = None, keyframes_per_scene: int | None = None,
                     data_root: str | os.PathLike | None = None) -> Path:
    """Root of a synthetic set of the given size (seed 0) under ``<data_root>/synthetic/``, generated on first use
    (and again when it was made by another generator version): ``<fmt>-mini`` for the default size, else
    ``<fmt>-<scenes>x<key frames>``."""
    scenes, keys = DEFAULTS[fmt] if fmt in DEFAULTS else (None, None)
    n_scenes, keyframes_per_scene = n_scenes or scenes, keyframes_per_scene or keys
    name = f"{fmt}-mini" if (n_scenes, keyframes_per_scene) == (scenes, keys) else \
        f"{fmt}-{n_scenes}x{keyframes_per_scene}"
    root = Path(data_root) if data_root is not None else default_data_root()
    out = root / "synthetic" / name
    if out.exists() and _current(out):
        return out
    fresh = out.with_name(f".{out.name}.{os.getpid()}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    synthesize(fmt, fresh, n_scenes, keyframes_per_scene)
    stale = out.with_name(f".{out.name}.{os.getpid()}.old")
    try:
        if out.exists():
            os.replace(out, stale)
        os.replace(fresh, out)
    except OSError:
        if not (out.exists() and _current(out)):  # not a lost race against another process making the same set
            raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
    return out
