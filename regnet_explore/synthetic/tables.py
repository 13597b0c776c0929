"""The devkits' tables: records gathered per table and written as compact JSON, tokens derived from their
content, and the static tables (categories, attributes, visibility levels, the sensor)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from regnet_explore.data.classes import NUSCENES_ATTRIBUTES, NUSCENES_VISIBILITY
from regnet_explore.synthetic.config import SynthConfig
from regnet_explore.synthetic.priors import ObjectPrior

TABLE_NAMES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
               "scene", "sample", "sample_data", "sample_annotation", "map")
LYFT_ATTRIBUTES = ("object_action_driving_straight_forward", "object_action_parked", "object_action_stopped",
                   "object_action_walking", "object_action_standing", "is_stationary")
CYCLES = ("bicycle", "motorcycle")
STATIC = ("traffic_cone", "barrier")


def make_token(fmt: str, *parts: object) -> str:
    """The token of a record, from what identifies it: Lyft's tokens are sha256 digests, nuScenes' md5."""
    text = "|".join(str(p) for p in parts).encode()
    return hashlib.sha256(text).hexdigest() if fmt == "lyft" else hashlib.md5(text).hexdigest()


class Tables:
    """A set's records, per table, and where its files go: tables, point files and maps under one root."""

    def __init__(self, cfg: SynthConfig, root: Path):
        self.cfg, self.root = cfg, root
        self.data_root = root / "v1.01-train" if cfg.fmt == "lyft" else root
        self.table_dir = self.data_root / cfg.version
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLE_NAMES}

    def token(self, *parts: object) -> str:
        return make_token(self.cfg.fmt, self.cfg.seed, *parts)

    def add(self, table: str, record: dict) -> None:
        self.tables[table].append(record)

    def write_points(self, relative: str, points: np.ndarray) -> None:
        path = self.data_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        points.astype(np.float32).tofile(path)

    def write(self) -> None:
        self.table_dir.mkdir(parents=True, exist_ok=True)
        for name, records in self.tables.items():
            with open(self.table_dir / f"{name}.json", "w") as f:
                json.dump(records, f, separators=(",", ":"))


def add_static_tables(w: Tables, priors: tuple[ObjectPrior, ...]) -> None:
    """Category, attribute, visibility and sensor records."""
    for prior in priors:
        w.add("category", {"token": w.token("category", prior.category), "name": prior.category,
                           "description": f"synthetic {prior.name}"})
    for name in (LYFT_ATTRIBUTES if w.cfg.fmt == "lyft" else NUSCENES_ATTRIBUTES):
        w.add("attribute", {"token": w.token("attribute", name), "name": name, "description": ""})
    for token, level in NUSCENES_VISIBILITY:
        w.add("visibility", {"token": token, "level": level, "description": f"visibility {level}"})
    w.add("sensor", {"token": w.token("sensor", "LIDAR_TOP"), "channel": "LIDAR_TOP", "modality": "lidar"})


def attribute_names(fmt: str, prior: ObjectPrior, speed: float, parked: bool) -> list[str]:
    """The attributes an annotator gives an object of class ``prior`` moving at ``speed`` (m/s)."""
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


def visibility_token(fraction: float) -> str:
    """The visibility level of an object of which ``fraction`` is seen."""
    return NUSCENES_VISIBILITY[int(np.clip(np.searchsorted([0.4, 0.6, 0.8], fraction, side="right"), 0, 3))][0]


def lidar_filename(cfg: SynthConfig, log_name: str, timestamp: int, key: bool) -> str:
    if cfg.fmt == "lyft":
        return f"lidar/{log_name}_lidar1_{timestamp}.bin"
    folder = "samples" if key else "sweeps"
    return f"{folder}/LIDAR_TOP/{log_name}__LIDAR_TOP__{timestamp}.pcd.bin"
