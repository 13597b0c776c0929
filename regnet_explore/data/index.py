"""A per-dataset sample index on disk (SQLite), built once by streaming the devkit tables, reused afterwards.

Build: each table is streamed record by record into SQLite (:mod:`jsonstream`), joined there, and every LiDAR
key frame becomes one ``samples`` row (transforms, up to ``MAX_SWEEPS`` previous scans with their
sweep-to-key-frame transforms) plus one ``boxes`` row per annotation (LiDAR-frame box, velocity as the devkits'
``box_velocity`` computes it, and the raw global pose for evaluation). Peak memory does not depend on the
number of samples. The file is written to a temporary name and renamed, and rebuilt when a table changes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from regnet_explore.data.geometry import invert, quaternion_to_matrix, transform
from regnet_explore.data.jsonstream import iter_json_array
from regnet_explore.errors import RegNetExploreError

SCHEMA = 1
MAX_SWEEPS = 10
MAX_TIME_DIFF = 1.5  # s, the devkits' box_velocity default
TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
          "scene", "sample", "sample_data", "sample_annotation", "map")

# Columns kept from each table: (sql column, record getter).
_POSE = [("tx", lambda r: r["translation"][0]), ("ty", lambda r: r["translation"][1]),
         ("tz", lambda r: r["translation"][2]), ("qw", lambda r: r["rotation"][0]), ("qx", lambda r: r["rotation"][1]),
         ("qy", lambda r: r["rotation"][2]), ("qz", lambda r: r["rotation"][3])]
_COLUMNS = {
    "sensor": [("channel", lambda r: r["channel"])],
    "calibrated_sensor": [("sensor_token", lambda r: r["sensor_token"]), *_POSE],
    "ego_pose": _POSE,
    "sample_data": [("sample_token", lambda r: r["sample_token"]), ("ego_pose_token", lambda r: r["ego_pose_token"]),
                    ("cs_token", lambda r: r["calibrated_sensor_token"]), ("timestamp", lambda r: r["timestamp"]),
                    ("is_key_frame", lambda r: int(r["is_key_frame"])), ("filename", lambda r: r["filename"]),
                    ("prev", lambda r: r["prev"])],
    "sample": [("scene_token", lambda r: r["scene_token"]), ("timestamp", lambda r: r["timestamp"])],
    "scene": [("name", lambda r: r["name"])],
    "category": [("name", lambda r: r["name"])],
    "attribute": [("name", lambda r: r["name"])],
    "instance": [("category_token", lambda r: r["category_token"])],
    "sample_annotation": [("sample_token", lambda r: r["sample_token"]),
                          ("instance_token", lambda r: r["instance_token"]), *_POSE,
                          ("w", lambda r: r["size"][0]), ("l", lambda r: r["size"][1]), ("h", lambda r: r["size"][2]),
                          ("prev", lambda r: r["prev"]), ("next", lambda r: r["next"]),
                          ("num_lidar_pts", lambda r: r.get("num_lidar_pts", -1)),
                          ("num_radar_pts", lambda r: r.get("num_radar_pts", 0)),
                          ("attribute_token", lambda r: (r.get("attribute_tokens") or [""])[0])],
}
_INDEXED = ("sample_data", "sample_annotation")  # foreign-key lookups by sample token
_BOX_COLUMNS = ("x", "y", "z", "l", "w", "h", "yaw", "vx", "vy")
_GLOBAL_COLUMNS = ("gx", "gy", "gz", "gw", "gl", "gh", "qw", "qx", "qy", "qz", "gvx", "gvy")


def _signature(tables: Path) -> str:
    parts = []
    for name in TABLES:
        path = tables / f"{name}.json"
        if not path.is_file():
            raise RegNetExploreError(f"{path}: missing table '{name}' (a devkit table folder has all of: "
                                     f"{', '.join(TABLES)})")
        st = path.stat()
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1(f"{SCHEMA}|{tables.resolve()}|{'|'.join(parts)}".encode()).hexdigest()


def default_index_path(tables: Path, in_dataset: bool) -> Path:
    """``<tables>/../.regnet_explore/<version>.index.sqlite`` for our own (synthetic) sets, else a per-dataset
    file under ``~/.cache/regnet_explore/index`` (a real download is never written to)."""
    if in_dataset:
        return tables.parent / ".regnet_explore" / f"{tables.name}.index.sqlite"
    key = hashlib.sha1(str(tables.resolve()).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "regnet_explore" / "index" / f"{tables.name}-{key}.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to an index file."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def open_index(tables: Path, index_path: Path | None = None, rebuild: bool = False, in_dataset: bool = False
               ) -> Path:
    """Path of the up-to-date index of the table folder ``tables`` (``<root>/<version>``), built if needed;
    ``in_dataset`` places the default index file inside the dataset (see :func:`default_index_path`)."""
    signature = _signature(tables)
    path = Path(index_path) if index_path is not None else default_index_path(tables, in_dataset)
    if not rebuild and path.exists():
        con = connect(path)
        try:
            found = con.execute("SELECT value FROM meta WHERE key = 'signature'").fetchone()
        except sqlite3.DatabaseError:
            found = None
        finally:
            con.close()
        if found and found[0] == signature:
            return path
    build_index(tables, path, signature)
    return path


def _load_table(con: sqlite3.Connection, tables: Path, name: str, keep=None) -> None:
    columns = _COLUMNS[name]
    con.execute(f"CREATE TABLE {name} (token TEXT PRIMARY KEY, {', '.join(c for c, _ in columns)})")
    sql = f"INSERT INTO {name} VALUES ({', '.join('?' * (len(columns) + 1))})"
    path = tables / f"{name}.json"
    batch = []
    for record in iter_json_array(path):
        if keep is not None and not keep(record):
            continue
        try:
            batch.append((record["token"], *(get(record) for _, get in columns)))
        except (KeyError, IndexError, TypeError) as e:
            raise RegNetExploreError(f"{path}: record {record.get('token', '?')!r} lacks field {e}") from None
        if len(batch) >= 500:
            con.executemany(sql, batch)
            batch.clear()
    con.executemany(sql, batch)
    if name in _INDEXED:
        con.execute(f"CREATE INDEX {name}_sample ON {name} (sample_token)")


def build_index(tables: Path, path: Path, signature: str) -> None:
    """Stream the tables of ``tables`` into a new index file at ``path`` (atomically replaced).

    The raw tables go to a scratch database beside it (deleted afterwards); only the index tables are written to
    the new file. SQLite keeps temporaries on disk and a 4 MB page cache per file, so memory does not grow with
    the data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = _temp_file(path)
    tmp = _temp_file(path)
    try:
        con = sqlite3.connect(scratch)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE", "cache_size = -4000"):
            con.execute(f"PRAGMA {pragma}")
        con.execute("ATTACH DATABASE ? AS idx", (tmp,))
        con.execute("PRAGMA idx.cache_size = -4000")
        for name in ("sensor", "calibrated_sensor", "ego_pose", "sample", "scene", "category", "attribute",
                     "instance", "sample_annotation"):
            _load_table(con, tables, name)
        lidar_cs = {t for (t,) in con.execute(
            "SELECT c.token FROM calibrated_sensor c JOIN sensor s ON s.token = c.sensor_token "
            "WHERE s.channel = 'LIDAR_TOP'")}
        if not lidar_cs:
            raise RegNetExploreError(f"{tables}/sensor.json: no LIDAR_TOP sensor")
        _load_table(con, tables, "sample_data", keep=lambda r: r.get("calibrated_sensor_token") in lidar_cs)
        _index_samples(con, tables)
        con.execute("CREATE TABLE idx.meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO idx.meta VALUES ('signature', ?)", (signature,))
        con.commit()
        con.close()
        os.replace(tmp, path)
    finally:
        for name in (scratch, tmp):
            if os.path.exists(name):
                os.unlink(name)


def _temp_file(path: Path) -> str:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return name


def _pose(row) -> np.ndarray:
    return transform(np.array(row[3:7]), np.array(row[0:3]))


def _index_samples(con: sqlite3.Connection, tables: Path) -> None:
    con.execute("CREATE TABLE idx.samples (idx INTEGER PRIMARY KEY, token TEXT UNIQUE, scene TEXT, timestamp INTEGER, "
                "lidar_path TEXT, lidar2ego BLOB, ego2global BLOB)")
    con.execute("CREATE TABLE idx.sweeps (sample_idx INTEGER, k INTEGER, path TEXT, time_lag REAL, "
                "sweep2lidar BLOB, PRIMARY KEY (sample_idx, k))")
    con.execute(f"CREATE TABLE idx.boxes (sample_idx INTEGER, token TEXT, category TEXT, attribute TEXT, "
                f"num_lidar_pts INTEGER, num_radar_pts INTEGER, {', '.join(_BOX_COLUMNS + _GLOBAL_COLUMNS)})")
    con.execute("CREATE INDEX idx.boxes_sample ON boxes (sample_idx)")
    keys = con.execute(
        "SELECT d.token, d.sample_token, d.filename, s.timestamp, sc.name, d.cs_token, d.ego_pose_token, d.prev "
        "FROM sample_data d JOIN sample s ON s.token = d.sample_token JOIN scene sc ON sc.token = s.scene_token "
        "WHERE d.is_key_frame = 1 ORDER BY sc.name, s.timestamp")
    reader = con.cursor()
    idx = 0
    while rows := keys.fetchmany(256):
        for _sd, sample_token, filename, timestamp, scene, cs_token, pose_token, prev in rows:
            lidar2ego = _pose(reader.execute(f"SELECT {_cols()} FROM calibrated_sensor WHERE token = ?",
                                             (cs_token,)).fetchone())
            ego2global = _pose(reader.execute(f"SELECT {_cols()} FROM ego_pose WHERE token = ?",
                                              (pose_token,)).fetchone())
            con.execute("INSERT INTO idx.samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (idx, sample_token, scene, timestamp, filename, lidar2ego.tobytes(), ego2global.tobytes()))
            global2lidar = invert(ego2global @ lidar2ego)
            _index_sweeps(con, reader, idx, prev, timestamp, global2lidar)
            _index_boxes(con, reader, idx, sample_token, global2lidar)
            idx += 1
    if idx == 0:
        raise RegNetExploreError(f"{tables}: no LIDAR_TOP key frames in sample_data.json")


def _cols() -> str:
    return "tx, ty, tz, qw, qx, qy, qz"


def _index_sweeps(con, reader, idx: int, prev: str, timestamp: int, global2lidar: np.ndarray) -> None:
    """The ``MAX_SWEEPS`` scans before a key frame (following ``prev``), as mmdetection3d's info files list them."""
    for k in range(MAX_SWEEPS):
        if not prev:
            return
        row = reader.execute(
            f"SELECT d.prev, d.filename, d.timestamp, {', '.join('c.' + c for c in _cols().split(', '))}, "
            f"{', '.join('e.' + c for c in _cols().split(', '))} FROM sample_data d "
            "JOIN calibrated_sensor c ON c.token = d.cs_token JOIN ego_pose e ON e.token = d.ego_pose_token "
            "WHERE d.token = ?", (prev,)).fetchone()
        if row is None:
            return
        sweep2lidar = global2lidar @ _pose(row[10:17]) @ _pose(row[3:10])
        con.execute("INSERT INTO idx.sweeps VALUES (?, ?, ?, ?, ?)",
                    (idx, k, row[1], (timestamp - row[2]) * 1e-6, sweep2lidar.tobytes()))
        prev = row[0]


def _index_boxes(con, reader, idx: int, sample_token: str, global2lidar: np.ndarray) -> None:
    rows = reader.execute(
        "SELECT a.token, c.name, COALESCE(at.name, ''), a.num_lidar_pts, a.num_radar_pts, "
        "a.tx, a.ty, a.tz, a.w, a.l, a.h, a.qw, a.qx, a.qy, a.qz, "
        "COALESCE(p.tx, a.tx), COALESCE(p.ty, a.ty), COALESCE(sp.timestamp, s.timestamp), "
        "COALESCE(n.tx, a.tx), COALESCE(n.ty, a.ty), COALESCE(sn.timestamp, s.timestamp), "
        "p.token IS NOT NULL, n.token IS NOT NULL "
        "FROM sample_annotation a JOIN sample s ON s.token = a.sample_token "
        "JOIN instance i ON i.token = a.instance_token JOIN category c ON c.token = i.category_token "
        "LEFT JOIN attribute at ON at.token = a.attribute_token "
        "LEFT JOIN sample_annotation p ON p.token = a.prev LEFT JOIN sample sp ON sp.token = p.sample_token "
        "LEFT JOIN sample_annotation n ON n.token = a.next LEFT JOIN sample sn ON sn.token = n.sample_token "
        "WHERE a.sample_token = ? ORDER BY a.token", (sample_token,)).fetchall()
    if not rows:
        return
    num = np.array([r[5:23] for r in rows], dtype=np.float64)
    centre, size, quat = num[:, 0:3], num[:, 3:6], num[:, 6:10]
    velocity = box_velocity(num[:, 10:13], num[:, 13:16], num[:, 16].astype(bool), num[:, 17].astype(bool))
    lidar = boxes_to_lidar(centre, size, quat, velocity, global2lidar)
    con.executemany(f"INSERT INTO idx.boxes VALUES ({', '.join('?' * (6 + len(_BOX_COLUMNS) + len(_GLOBAL_COLUMNS)))})",
                    [(idx, *r[:5], *lidar[i].tolist(), *num[i, :10].tolist(), *velocity[i].tolist())
                     for i, r in enumerate(rows)])


def box_velocity(first: np.ndarray, last: np.ndarray, has_prev: np.ndarray, has_next: np.ndarray) -> np.ndarray:
    """Global xy velocity (G, 2) from the neighbouring annotations, exactly as the devkits' ``box_velocity``.

    first / last: (G, 3) = x, y, timestamp (us) of the previous (or current) and next (or current) annotation.
    NaN where it cannot be estimated (no neighbour, or neighbours too far apart in time).
    """
    dt = (last[:, 2] - first[:, 2]) * 1e-6
    limit = np.where(has_prev & has_next, 2 * MAX_TIME_DIFF, MAX_TIME_DIFF)
    ok = (has_prev | has_next) & (dt <= limit) & (dt != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = (last[:, :2] - first[:, :2]) / dt[:, None]
    return np.where(ok[:, None], v, np.nan)


def boxes_to_lidar(centre: np.ndarray, size_wlh: np.ndarray, quat: np.ndarray, velocity: np.ndarray,
                   global2lidar: np.ndarray) -> np.ndarray:
    """Global devkit boxes -> LiDAR-frame boxes (G, 9) = x, y, z_bottom, l, w, h, yaw, vx, vy.

    centre (G, 3) box centres, size_wlh (G, 3) devkit (w, l, h), quat (G, 4), velocity (G, 2) global (NaN kept).
    """
    rot = global2lidar[:3, :3]
    c = centre @ rot.T + global2lidar[:3, 3]
    box_rot = rot @ quaternion_to_matrix(quat)
    yaw = np.arctan2(box_rot[:, 1, 0], box_rot[:, 0, 0])
    v = np.concatenate([velocity, np.zeros((len(velocity), 1))], axis=1) @ rot.T
    return np.concatenate([c[:, :2], (c[:, 2] - size_wlh[:, 2] / 2)[:, None], size_wlh[:, [1, 0, 2]],
                           yaw[:, None], v[:, :2]], axis=1)
