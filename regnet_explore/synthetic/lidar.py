"""A spinning multi-beam LiDAR simulated by ray casting against the ground plane and oriented boxes (numpy).

Each ray returns the nearest surface; boxes outside a ray's azimuth sector are never tested, so the cost grows
with the angular size of the scene, not with (rays x boxes). The return probability and intensity follow a
diffuse reflector: reflectivity x cos(incidence) / range^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regnet_explore.data.geometry import quaternion_to_matrix

EGO_REFLECTIVITY = 0.3
GROUND_REFLECTIVITY = 0.12


@dataclass(frozen=True)
class LidarSpec:
    """Beams (elevation angles, degrees, bottom first), azimuth steps per revolution, range limit (m), range
    noise (m), mount pose in the ego frame (translation (3,), quaternion (4,)), the receiver's power threshold
    (reflectivity x cos / (range/10 m)^2 giving a 63% return probability) and the ego roof (l, w, h, centre x) that
    blocks the lowest beams."""
    elevations_deg: tuple[float, ...]
    n_azimuth: int
    max_range: float
    range_noise: float
    mount_translation: tuple[float, float, float]
    mount_rotation: tuple[float, float, float, float]
    power_threshold: float = 2e-4
    ego_body: tuple[float, float, float, float] = (1.6, 1.3, 1.56, 0.5)


# Velodyne HDL-32E as on the nuScenes car (LIDAR_TOP calibration of the real dataset, 1084 firings per turn).
NUSCENES_LIDAR = LidarSpec(
    elevations_deg=tuple(np.linspace(-30.67, 10.67, 32).round(3)), n_azimuth=1084, max_range=100.0,
    range_noise=0.02, mount_translation=(0.943713, 0.0, 1.84023),
    mount_rotation=(0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817))
# A 64-beam roof LiDAR as on the Lyft cars (Lyft LIDAR_TOP calibration).
LYFT_LIDAR = LidarSpec(
    elevations_deg=tuple(np.linspace(-25.0, 15.0, 64).round(3)), n_azimuth=1000, max_range=120.0,
    range_noise=0.02, mount_translation=(1.1970962545449502, 3.680498291456359e-05, 1.8279670539933053),
    mount_rotation=(0.006336712035703651, -0.011344169002788682, 7.18908018654885e-05, 0.9999155718069028))


@dataclass(frozen=True)
class Scan:
    """One revolution: points (N, 5) float32 = x, y, z, intensity (0-255), beam index, in the sensor frame;
    per box the number of returned points (B,) and the visible fraction of the rays that cross it (B,)."""
    points: np.ndarray
    box_points: np.ndarray
    box_visibility: np.ndarray


def ray_directions(spec: LidarSpec) -> np.ndarray:
    """Unit directions (n_azimuth * n_beams, 3) in the sensor frame, azimuth-major (ray = column * n_beams + beam)."""
    el = np.radians(np.asarray(spec.elevations_deg))
    az = np.arange(spec.n_azimuth) * (2 * np.pi / spec.n_azimuth) - np.pi
    return np.stack([np.cos(el)[None, :] * np.cos(az)[:, None], np.cos(el)[None, :] * np.sin(az)[:, None],
                     np.broadcast_to(np.sin(el), (len(az), len(el)))], axis=-1).reshape(-1, 3)


def sensor_pose(spec: LidarSpec, ego_xy: np.ndarray, ego_yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Sensor-to-world rotation (3, 3) and position (3,) for an ego pose on flat ground."""
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    ego_rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    position = np.array([ego_xy[0], ego_xy[1], 0.0]) + ego_rot @ np.asarray(spec.mount_translation)
    return ego_rot @ quaternion_to_matrix(np.asarray(spec.mount_rotation)), position


def _box_frames(boxes: np.ndarray, rotation: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (B, 7) global -> world-to-box rotations in sensor coordinates (B, 3, 3) and the sensor origin in
    each box frame (B, 3)."""
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    zeros, ones = np.zeros_like(c), np.ones_like(c)
    box_rot = np.stack([np.stack([c, -s, zeros], -1), np.stack([s, c, zeros], -1),
                        np.stack([zeros, zeros, ones], -1)], axis=-2)  # box -> world
    sensor_to_box = np.swapaxes(box_rot, 1, 2) @ rotation  # (B, 3, 3)
    centre = boxes[:, :3] + np.stack([zeros, zeros, boxes[:, 5] / 2], -1)
    origin = np.einsum("bji,bj->bi", box_rot, position - centre)
    return sensor_to_box, origin


def _sectors(spec: LidarSpec, sensor_to_box: np.ndarray, origin: np.ndarray, half: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Azimuth columns (first (B,), count (B,)) and beams (first (B,), count (B,)) each box can occupy."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners_box = signs[None] * half[:, None, :] - origin[:, None, :]  # corners relative to the sensor, box axes
    corners = np.einsum("bji,bkj->bki", sensor_to_box, corners_box)  # sensor axes
    az = np.arctan2(corners[..., 1], corners[..., 0])
    centre_az = np.arctan2(corners[..., 1].mean(1), corners[..., 0].mean(1))
    delta = (az - centre_az[:, None] + np.pi) % (2 * np.pi) - np.pi
    step = 2 * np.pi / spec.n_azimuth
    start = np.floor((centre_az + delta.min(1) + np.pi) / step).astype(np.int64)
    count = np.ceil((delta.max(1) - delta.min(1)) / step).astype(np.int64) + 2
    inside = np.all(np.abs(origin[:, :2]) <= half[:, :2], axis=1)
    count[inside] = spec.n_azimuth
    near = np.linalg.norm(origin, axis=1) - np.linalg.norm(half, axis=1) < spec.max_range
    count = np.where(near, np.minimum(count, spec.n_azimuth), 0)

    # Elevation bounds from the nearest and farthest footprint distances and the top and bottom heights (box z
    # is vertical), widened by the tilt of the mount plus one beam.
    nearest = np.linalg.norm(np.clip(origin[:, :2], -half[:, :2], half[:, :2]) - origin[:, :2], axis=1)
    farthest = np.linalg.norm(np.abs(origin[:, :2]) + half[:, :2], axis=1)
    top, bottom = half[:, 2] - origin[:, 2], -half[:, 2] - origin[:, 2]
    el_max = np.arctan2(top, np.where(top > 0, nearest, farthest))
    el_min = np.arctan2(bottom, np.where(bottom > 0, farthest, nearest))
    elevations = np.radians(np.asarray(spec.elevations_deg))
    tilt = np.arccos(np.clip(sensor_to_box[0, 2, 2], -1.0, 1.0)) if len(half) else 0.0
    margin = int(np.ceil(tilt / np.diff(elevations).min())) + 1
    first = np.maximum(np.searchsorted(elevations, el_min) - margin, 0)
    last = np.minimum(np.searchsorted(elevations, el_max) + margin, len(elevations))
    return start, count, first, np.maximum(last - first, 0)


def cast(spec: LidarSpec, ego_xy: np.ndarray, ego_yaw: float, boxes: np.ndarray, reflectivity: np.ndarray,
         rng: np.random.Generator) -> Scan:
    """Scan boxes (B, 7) = x, y, z_bottom, l, w, h, yaw (global) with reflectivities (B,) from an ego pose."""
    rotation, position = sensor_pose(spec, ego_xy, ego_yaw)
    all_boxes = np.concatenate([boxes, _ego_box(spec, ego_xy, ego_yaw)])
    all_refl = np.concatenate([reflectivity, [EGO_REFLECTIVITY]])
    directions = ray_directions(spec)
    sensor_to_box, origin = _box_frames(all_boxes, rotation, position)
    half = all_boxes[:, 3:6] / 2
    ray, box = _candidate_pairs(spec, sensor_to_box, origin, half)  # (P,) ray index, (P,) box index
    ray, box, t_in, cos_box = _slab_hits(spec, sensor_to_box, origin, half, directions, ray, box)
    t_ray, owner, cos = _first_hits(len(directions), ray, box, t_in, cos_box)
    t_ray, owner, cos = _ground_hits(directions, rotation, position, t_ray, owner, cos)
    refl = np.where(owner >= 0, all_refl[owner], GROUND_REFLECTIVITY)
    keep_idx, points = _returns(spec, directions, t_ray, refl, cos, rng)
    n_boxes = len(boxes)
    crossing = np.bincount(box, minlength=n_boxes + 1)[:n_boxes]
    visible = np.bincount(owner[owner >= 0], minlength=n_boxes + 1)[:n_boxes]
    returned = np.bincount(owner[keep_idx][owner[keep_idx] >= 0], minlength=n_boxes + 1)[:n_boxes]
    return Scan(points=points, box_points=returned, box_visibility=visible / np.maximum(crossing, 1))


def _ego_box(spec: LidarSpec, ego_xy: np.ndarray, ego_yaw: float) -> np.ndarray:
    """The ego's own body (1, 7), which shadows the rays that point down at it."""
    length, width, height, x = spec.ego_body
    roof_xy = ego_xy + x * np.array([np.cos(ego_yaw), np.sin(ego_yaw)])
    return np.array([[*roof_xy, 0.0, length, width, height, ego_yaw]])


def _candidate_pairs(spec: LidarSpec, sensor_to_box: np.ndarray, origin: np.ndarray, half: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Every (ray, box) pair inside a box's azimuth sector and beam band: ray indices (P,), box indices (P,)."""
    start, count, first_beam, n_beam = _sectors(spec, sensor_to_box, origin, half)
    count = np.where(n_beam > 0, count, 0)
    box_of_col = np.repeat(np.arange(len(half)), count)
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    column = (np.repeat(start, count) + offsets) % spec.n_azimuth
    beams = n_beam[box_of_col]
    box = np.repeat(box_of_col, beams)
    beam = np.repeat(first_beam[box_of_col], beams) + np.arange(beams.sum()) - np.repeat(np.cumsum(beams) - beams,
                                                                                           beams)
    return np.repeat(column, beams) * len(spec.elevations_deg) + beam, box


def _slab_hits(spec: LidarSpec, sensor_to_box: np.ndarray, origin: np.ndarray, half: np.ndarray,
               directions: np.ndarray, ray: np.ndarray, box: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pairs whose ray enters its box within range: (ray, box, entry distance, cosine to the entered face)."""
    # Pair arithmetic in float32: ranges to 120 m at millimetre precision, half the memory traffic.
    d_local = np.einsum("pij,pj->pi", sensor_to_box.astype(np.float32)[box], directions.astype(np.float32)[ray])
    d_local[np.abs(d_local) < 1e-9] = 1e-9
    half32, origin32 = half.astype(np.float32), origin.astype(np.float32)
    t1 = (-half32[box] - origin32[box]) / d_local
    t2 = (half32[box] - origin32[box]) / d_local
    near_t = np.minimum(t1, t2)
    t_in, t_out = near_t.max(1), np.maximum(t1, t2).min(1)
    hit = (t_out >= t_in) & (t_in > 1e-3) & (t_in < spec.max_range)
    cos_box = np.abs(np.take_along_axis(d_local[hit], near_t[hit].argmax(1)[:, None], 1)[:, 0])
    return ray[hit], box[hit], t_in[hit], cos_box


def _first_hits(n_rays: int, ray: np.ndarray, box: np.ndarray, t_in: np.ndarray, cos_box: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ray (n_rays,): the nearest box's distance (inf: none), its index (-1: none) and the cosine there."""
    t_ray = np.full(n_rays, np.inf)
    np.minimum.at(t_ray, ray, t_in)
    owner = np.full(n_rays, -1)
    cos = np.zeros(n_rays)
    nearest = t_in == t_ray[ray]
    owner[ray[nearest]] = box[nearest]
    cos[ray[nearest]] = cos_box[nearest]
    return t_ray, owner, cos


def _ground_hits(directions: np.ndarray, rotation: np.ndarray, position: np.ndarray, t_ray: np.ndarray,
                 owner: np.ndarray, cos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat ground (z = 0) where a ray meets it before any box: its distance, owner -1, the cosine there."""
    up = rotation.T @ np.array([0.0, 0.0, 1.0])  # world up in sensor axes
    down_speed = directions @ up
    t_ground = np.where(down_speed < -1e-6, -position[2] / np.minimum(down_speed, -1e-6), np.inf)
    ground = t_ground < t_ray
    owner[ground] = -1
    cos[ground] = -down_speed[ground]
    return np.where(ground, t_ground, t_ray), owner, cos


def _returns(spec: LidarSpec, directions: np.ndarray, t_ray: np.ndarray, refl: np.ndarray, cos: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The rays that return a point (their indices (K,)) and the points (K, 5): x, y, z, intensity, beam; a return
    is drawn with a probability that grows with the received power, its range and intensity with sensor noise."""
    power = refl * cos / np.maximum(t_ray / 10.0, 0.1) ** 2
    keep = (t_ray < spec.max_range) & (rng.random(len(t_ray)) < 1 - np.exp(-power / spec.power_threshold))
    keep_idx = np.flatnonzero(keep)
    t_noisy = t_ray[keep_idx] + rng.normal(0, spec.range_noise, len(keep_idx))
    xyz = directions[keep_idx] * t_noisy[:, None]
    intensity = np.clip(np.round(110 * refl[keep_idx] * np.sqrt(cos[keep_idx]) / (1 + (t_ray[keep_idx] / 80) ** 2)
                                 + rng.normal(0, 1.5, len(keep_idx))), 0, 255)
    beam = keep_idx % len(spec.elevations_deg)
    points = np.concatenate([xyz, intensity[:, None], beam[:, None]], axis=1).astype(np.float32)
    return keep_idx, points
