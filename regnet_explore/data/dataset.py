"""Samples of nuScenes and Lyft (real downloads or synthetic sets) by split, read through the on-disk index.

``Sample.points`` are the key frame plus up to 10 sweeps in the key frame's LiDAR frame, (N, 5) = x, y, z,
intensity, time lag; boxes follow the detector convention (x, y, z_bottom, l, w, h, yaw from +x toward +y,
[vx, vy]) in the same frame, velocities as the devkits estimate them (NaN -> 0, as mmdetection3d).
"""

from __future__ import annotations

import copy
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnet_explore.data.classes import LYFT_CLASSES, NUSCENES_CLASSES
from regnet_explore.data.index import connect, open_index
from regnet_explore.data.multisweep import aggregate_sweeps
from regnet_explore.errors import RegNetExploreError

SYNTHETIC_MARKER = "synthetic.json"  # regnet_explore.synthetic's settings, at the root of every set it makes
NETWORK_DIMS = [0, 1, 2, 4]  # of (x, y, z, intensity, time lag): intensity is not a network input
NUSCENES_VERSIONS = ("v1.0-mini", "v1.0-trainval", "v1.0-test")
LYFT_VERSIONS = ("v1.01-train", "v1.01-test")
NUSCENES_SPLITS = {"v1.0-mini": ("mini_train", "mini_val"), "v1.0-trainval": ("train", "val"),
                   "v1.0-test": ("test",)}


@dataclass
class Sample:
    """One key frame. points (N, 5) float32; gt_boxes (G, 9) nuScenes / (G, 7) Lyft float32; gt_labels (G,) int64
    indices into the dataset's class names; lidar2ego / ego2global (4, 4) float64; timestamp in seconds."""
    token: str
    scene: str
    timestamp: float
    lidar_path: Path
    points: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_names: list[str]
    num_lidar_pts: np.ndarray
    lidar2ego: np.ndarray
    ego2global: np.ndarray

    def network_points(self) -> np.ndarray:
        """(N, 4) x, y, z, time lag: the detector's input (mmdetection3d keeps dims [0, 1, 2, 4])."""
        return self.points[:, NETWORK_DIMS]


@dataclass(frozen=True)
class GroundTruth:
    """Global-frame annotations of one sample, as the evaluation reads them: centres (G, 3), devkit sizes
    (G, 3) = w, l, h, quaternions (G, 4), class names, attribute names, num_lidar_pts + num_radar_pts (G,)."""
    translation: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    names: list[str]
    attributes: list[str]
    num_points: np.ndarray


class DetectionData:
    """Key frames of one split of a devkit dataset. Subclasses set the layout, class mapping and splits."""

    class_names: tuple[str, ...] = ()
    box_dim = 9

    def __init__(self, dataroot: str | os.PathLike, version: str, split: str | None = None, sweeps: int = 10,
                 index_path: str | os.PathLike | None = None, rebuild_index: bool = False):
        self.dataroot = Path(dataroot)
        self.version = version
        self.split = split
        self.sweeps = sweeps
        if not self.dataroot.is_dir():
            raise RegNetExploreError(f"dataroot {self.dataroot}: no such directory")
        self._check_version()
        tables = self.tables_dir
        if not tables.is_dir():
            found = sorted(p.name for p in tables.parent.glob("v1.0*")) if tables.parent.is_dir() else []
            raise RegNetExploreError(f"{tables}: no table folder for version {version!r}"
                                     + (f" (found: {', '.join(found)})" if found else ""))
        scenes = self._split_scenes(split)  # before a possibly long index build
        self.index_path = open_index(tables, Path(index_path) if index_path else None, rebuild_index,
                                     in_dataset=self.synthetic)
        self._connection: tuple[int, sqlite3.Connection] | None = None
        rows = self._con.execute("SELECT idx, token, scene FROM samples ORDER BY idx").fetchall()
        rows = [r for r in rows if scenes is None or r[2] in scenes]
        self._rows = [r[0] for r in rows]
        self.tokens: list[str] = [r[1] for r in rows]
        self._position = {t: i for i, t in enumerate(self.tokens)}

    @property
    def synthetic(self) -> bool:
        """Whether the set was made by ``regnet_explore.synthetic`` (its settings file at the dataroot): views and
        tables say so, since nothing learnt or measured on it transfers to real LiDAR as it is."""
        return (self.dataroot / SYNTHETIC_MARKER).is_file()

    # Layout and mapping, per dataset.
    @property
    def tables_dir(self) -> Path:
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        raise NotImplementedError

    def _check_version(self) -> None:
        raise NotImplementedError

    def _split_scenes(self, split: str | None) -> set[str] | None:
        raise NotImplementedError

    def detection_name(self, category: str) -> str | None:
        raise NotImplementedError

    def _keep(self, names: list[str | None], num_points: np.ndarray) -> np.ndarray:
        return np.array([n is not None for n in names], dtype=bool)

    @property
    def _con(self) -> sqlite3.Connection:
        # One connection per process: SQLite connections must not cross a fork (DataLoader workers).
        if self._connection is None or self._connection[0] != os.getpid():
            self._connection = (os.getpid(), connect(self.index_path))
        return self._connection[1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_connection": None}

    def __len__(self) -> int:
        return len(self.tokens)

    def head(self, n: int) -> DetectionData:
        """The first ``n`` key frames of the split (a copy sharing the index)."""
        if n < 1:
            raise RegNetExploreError(f"a split of {n} key frames: give at least 1")
        part = copy.copy(self)
        part._rows, part.tokens, part._connection = self._rows[:n], self.tokens[:n], None
        part._position = {t: i for i, t in enumerate(part.tokens)}
        return part

    def index_of(self, token: str) -> int:
        try:
            return self._position[token]
        except KeyError:
            raise RegNetExploreError(f"sample token {token!r}: not in {self.dataroot} {self.version} "
                                     f"split {self.split or 'all'}") from None

    def _idx(self, key: int | str) -> int:
        if isinstance(key, str):
            return self._rows[self.index_of(key)]
        if not -len(self) <= key < len(self):
            raise RegNetExploreError(f"sample index {key}: out of range for {len(self)} samples")
        return self._rows[key]

    def sample(self, key: int | str, with_points: bool = True) -> Sample:
        """The key frame at position ``key`` of the split, or with sample token ``key``."""
        idx = self._idx(key)
        token, scene, timestamp, lidar_path, l2e, e2g = self._con.execute(
            "SELECT token, scene, timestamp, lidar_path, lidar2ego, ego2global FROM samples WHERE idx = ?",
            (idx,)).fetchone()
        points = np.zeros((0, 5), np.float32)
        if with_points:
            sweeps = self._con.execute("SELECT path, time_lag, sweep2lidar FROM sweeps WHERE sample_idx = ? "
                                       "ORDER BY k LIMIT ?", (idx, self.sweeps)).fetchall()
            points = aggregate_sweeps(self.data_dir / lidar_path,
                                      [(self.data_dir / p, lag, np.frombuffer(m).reshape(4, 4))
                                       for p, lag, m in sweeps])
        rows = self._con.execute("SELECT category, num_lidar_pts, x, y, z, l, w, h, yaw, vx, vy FROM boxes "
                                 "WHERE sample_idx = ? ORDER BY rowid", (idx,)).fetchall()
        names = [self.detection_name(r[0]) for r in rows]
        boxes = np.array([r[2:] for r in rows], dtype=np.float64).reshape(-1, 9)
        num_lidar = np.array([r[1] for r in rows], dtype=np.int64)
        keep = self._keep(names, num_lidar)
        kept = [n for n, k in zip(names, keep) if k]
        boxes = np.nan_to_num(boxes[keep][:, :self.box_dim], nan=0.0)
        return Sample(token=token, scene=scene, timestamp=timestamp * 1e-6, lidar_path=self.data_dir / lidar_path,
                      points=points, gt_boxes=boxes.astype(np.float32),
                      gt_labels=np.array([self.class_names.index(n) for n in kept], dtype=np.int64),
                      gt_names=kept, num_lidar_pts=num_lidar[keep],
                      lidar2ego=np.frombuffer(l2e).reshape(4, 4).copy(),
                      ego2global=np.frombuffer(e2g).reshape(4, 4).copy())

    def ground_truth(self, key: int | str) -> GroundTruth:
        """All annotations of a sample mapped to detection classes, in the global frame (for evaluation)."""
        rows = self._con.execute("SELECT category, attribute, num_lidar_pts + num_radar_pts, gx, gy, gz, gw, gl, "
                                 "gh, qw, qx, qy, qz FROM boxes WHERE sample_idx = ? ORDER BY rowid",
                                 (self._idx(key),)).fetchall()
        names = [self.detection_name(r[0]) for r in rows]
        keep = [i for i, n in enumerate(names) if n is not None]
        num = np.array([rows[i][3:] for i in keep], dtype=np.float64).reshape(-1, 10)
        return GroundTruth(translation=num[:, :3], size=num[:, 3:6], rotation=num[:, 6:10],
                           names=[names[i] for i in keep], attributes=[rows[i][1] for i in keep],
                           num_points=np.array([rows[i][2] for i in keep], dtype=np.int64))

    def transforms(self, key: int | str) -> tuple[np.ndarray, np.ndarray]:
        """lidar2ego and ego2global (4, 4) of a sample, without reading points or boxes."""
        l2e, e2g = self._con.execute("SELECT lidar2ego, ego2global FROM samples WHERE idx = ?",
                                     (self._idx(key),)).fetchone()
        return np.frombuffer(l2e).reshape(4, 4).copy(), np.frombuffer(e2g).reshape(4, 4).copy()

    def scene_names(self) -> list[str]:
        return sorted({s for (s,) in self._con.execute("SELECT DISTINCT scene FROM samples")})


class NuScenesData(DetectionData):
    """nuScenes at ``dataroot`` (``<dataroot>/<version>/*.json``, ``samples/``, ``sweeps/``, ``maps/``).

    Splits are the devkit's scene lists (``mini_train``/``mini_val``, ``train``/``val``/``test``); ``None`` = all.
    GT keeps the 10 detection classes with at least one LiDAR point, as mmdetection3d trains on.
    """

    class_names = NUSCENES_CLASSES
    box_dim = 9

    @property
    def tables_dir(self) -> Path:
        return self.dataroot / self.version

    @property
    def data_dir(self) -> Path:
        return self.dataroot

    def _check_version(self) -> None:
        if self.version not in NUSCENES_VERSIONS:
            raise RegNetExploreError(f"version {self.version!r}: not a nuScenes version "
                                     f"({', '.join(NUSCENES_VERSIONS)})")

    def _split_scenes(self, split: str | None) -> set[str] | None:
        if split is None:
            return None
        allowed = NUSCENES_SPLITS[self.version]
        if split not in allowed:
            raise RegNetExploreError(f"split {split!r}: not a split of {self.version} ({', '.join(allowed)})")
        from nuscenes.utils.splits import create_splits_scenes
        return set(create_splits_scenes()[split])

    def detection_name(self, category: str) -> str | None:
        from nuscenes.eval.detection.utils import category_to_detection_name
        return category_to_detection_name(category)

    def _keep(self, names: list[str | None], num_points: np.ndarray) -> np.ndarray:
        return super()._keep(names, num_points) & (num_points > 0)


class LyftData(DetectionData):
    """Lyft at ``dataroot`` laid out as mmdetection3d expects: ``<dataroot>/<version>/<version>/*.json`` (tables),
    ``<dataroot>/<version>/{lidar,maps}/``, and the scene lists ``<dataroot>/{train,val}.txt``.

    GT keeps the 9 classes (Lyft category names are the class names), 7-dim boxes (no velocity), all boxes.
    """

    class_names = LYFT_CLASSES
    box_dim = 7

    @property
    def tables_dir(self) -> Path:
        return self.dataroot / self.version / self.version

    @property
    def data_dir(self) -> Path:
        return self.dataroot / self.version

    def _check_version(self) -> None:
        if self.version not in LYFT_VERSIONS:
            raise RegNetExploreError(f"version {self.version!r}: not a Lyft version ({', '.join(LYFT_VERSIONS)})")

    def _split_scenes(self, split: str | None) -> set[str] | None:
        if split is None:
            return None
        path = self.dataroot / f"{split}.txt"
        if not path.is_file():
            raise RegNetExploreError(f"{path}: no scene list for split {split!r} (one scene name per line)")
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}

    def detection_name(self, category: str) -> str | None:
        return category if category in LYFT_CLASSES else None


def training_split(fmt: str, version: str) -> str:
    """The split a detector trains on by default: ``mini_train`` / ``train`` (nuScenes), ``train`` (Lyft)."""
    return NUSCENES_SPLITS[version][0] if fmt == "nuscenes" else "train"


def validation_split(fmt: str, version: str) -> str:
    """The split a detector is scored on by default: ``mini_val`` / ``val`` (nuScenes), ``val`` (Lyft)."""
    return NUSCENES_SPLITS[version][-1] if fmt == "nuscenes" else "val"


def open_dataset(fmt: str, dataroot: str | os.PathLike, version: str | None = None, split: str | None = None,
                 **kwargs) -> DetectionData:
    """``NuScenesData`` or ``LyftData`` by format name; the version defaults to the synthetic sets' versions."""
    if fmt == "nuscenes":
        if version is None:
            found = [v for v in NUSCENES_VERSIONS if (Path(dataroot) / v).is_dir()]
            version = found[0] if found else "v1.0-mini"
        return NuScenesData(dataroot, version, split, **kwargs)
    if fmt == "lyft":
        return LyftData(dataroot, version or "v1.01-train", split, **kwargs)
    raise RegNetExploreError(f"format {fmt!r}: unknown dataset format (nuscenes, lyft)")
