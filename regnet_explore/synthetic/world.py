"""A simulated street scene: a road, an ego vehicle driving along it, annotated actors and static clutter.

Everything moves along a road of constant curvature. A position on it is (s, d): arc length along the centre
line and lateral offset to the left. Right-hand traffic: the ego vehicle drives in the lane at d = -1.75 toward
+s; lanes at d > 0 carry the opposite direction. All boxes stand on the ground plane z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regnet_explore.synthetic.priors import ObjectPrior

LANES = (-1.75, -5.25, 1.75, 5.25)
PARKING_D = 8.75
BIKE_D = 7.1
CONE_D = 3.5
BARRIER_D = 13.5
OFFROAD_D = 21.0


@dataclass(frozen=True)
class Road:
    """Centre line through ``origin`` (2,) with heading ``heading`` at s = 0 and constant ``curvature`` (1/m)."""
    origin: np.ndarray
    heading: float
    curvature: float


def road_pose(road: Road, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Road coordinates s, d (N,) -> xy (N, 2) and the road heading there (N,)."""
    s, d = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64))
    k, h0 = road.curvature, road.heading
    h = h0 + k * s
    centre = np.stack([(np.sin(h) - np.sin(h0)) / k, (np.cos(h0) - np.cos(h)) / k], axis=-1)
    xy = road.origin + centre + d[..., None] * np.stack([-np.sin(h), np.cos(h)], axis=-1)
    return xy, h


@dataclass(frozen=True)
class World:
    """One scene. Actors: per-actor class index into ``priors``, size (A, 3) = l, w, h, road offset d (A,),
    arc length at t = 0 ``s0`` (A,), signed speed along the road (A,), yaw relative to the road (A,),
    reflectivity (A,), and whether it parks (A,). Clutter: static boxes (C, 7) = x, y, z_bottom, l, w, h, yaw."""
    road: Road
    ego_speed: float
    ego_s0: float
    priors: tuple[ObjectPrior, ...]
    actor_class: np.ndarray
    actor_size: np.ndarray
    actor_d: np.ndarray
    actor_s0: np.ndarray
    actor_speed: np.ndarray
    actor_yaw: np.ndarray
    actor_reflectivity: np.ndarray
    actor_parked: np.ndarray
    clutter: np.ndarray
    clutter_reflectivity: np.ndarray


def ego_pose(world: World, t: float) -> tuple[np.ndarray, float]:
    """Ego position (2,) and yaw at time t (s)."""
    xy, h = road_pose(world.road, np.array([world.ego_s0 + world.ego_speed * t]), np.array([LANES[0]]))
    return xy[0], float(h[0])


def actor_boxes(world: World, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Actor boxes at time t: (A, 7) = x, y, z_bottom, l, w, h, yaw (global) and global velocity (A, 2)."""
    s = world.actor_s0 + world.actor_speed * t
    xy, heading = road_pose(world.road, s, world.actor_d)
    yaw = heading + world.actor_yaw
    # d(xy)/dt along an offset curve: speed scaled by (1 - curvature * d), along the road heading.
    speed = world.actor_speed * (1 - world.road.curvature * world.actor_d)
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    boxes = np.concatenate([xy, np.zeros((len(s), 1)), world.actor_size, yaw[:, None]], axis=1)
    return boxes, velocity


def _free(taken: list[tuple[float, float, float, float]], s: float, d: float, half_s: float, half_d: float) -> bool:
    return all(abs(s - ts) > half_s + hs + 0.5 or abs(d - td) > half_d + hd + 0.3 for ts, td, hs, hd in taken)


def _slot(prior: ObjectPrior, rng: np.random.Generator, moving: bool, lane_speeds: dict[float, float]
          ) -> tuple[float, float, float, bool]:
    """Road offset d, signed speed, yaw relative to the road and parked flag for one actor."""
    side = rng.choice([-1.0, 1.0])
    if prior.slot == "lane" and moving:
        d = float(rng.choice(LANES))
        speed = lane_speeds[d]  # one speed per lane keeps the gaps between its vehicles
        return d, speed, (0.0 if speed >= 0 else np.pi), False
    if prior.slot in ("lane", "parking"):
        return side * PARKING_D, 0.0, float(rng.normal(0, 0.05) + (0 if side < 0 else np.pi)), True
    if prior.slot == "bike":
        if moving:
            return side * BIKE_D, -side * prior.speed * rng.uniform(0.7, 1.3), (0.0 if side < 0 else np.pi), False
        return side * 10.5, 0.0, float(rng.uniform(-np.pi, np.pi)), True
    if prior.slot == "sidewalk":
        speed = prior.speed * rng.uniform(0.7, 1.3) * rng.choice([-1.0, 1.0]) if moving else 0.0
        yaw = (0.0 if speed > 0 else np.pi) if moving else float(rng.uniform(-np.pi, np.pi))
        return side * rng.uniform(10.3, 12.7), speed, yaw, False
    if prior.slot == "lane_edge":
        return side * CONE_D, 0.0, float(rng.uniform(-np.pi, np.pi)), False
    if prior.slot == "roadside":
        return side * BARRIER_D, 0.0, np.pi / 2 + float(rng.normal(0, 0.03)), False
    return side * OFFROAD_D, 0.0, float(rng.uniform(-np.pi, np.pi)), True


def simulate_world(rng: np.random.Generator, priors: tuple[ObjectPrior, ...], duration: float,
                   origin: np.ndarray, reach: float = 50.0) -> World:
    """A random scene lasting ``duration`` seconds around ``origin`` (2,), with every class of ``priors``.

    Actors start within ``reach`` metres of the ego path along the road; the counts of the priors hold for the
    default 50 m and scale with ``reach``, so a longer reach adds far traffic at the same density."""
    road = Road(origin=np.asarray(origin, dtype=np.float64), heading=float(rng.uniform(-np.pi, np.pi)),
                curvature=float(rng.choice([-1.0, 1.0]) * rng.uniform(5e-4, 4e-3)))
    ego_speed = float(rng.choice([0.0, rng.uniform(3.0, 10.0)], p=[0.15, 0.85]))
    lane_speeds = {LANES[0]: ego_speed, LANES[1]: rng.uniform(6, 11), LANES[2]: -rng.uniform(6, 11),
                   LANES[3]: -rng.uniform(6, 11)}
    s_lo, s_hi = -reach, ego_speed * duration + reach
    taken: list[tuple[float, float, float, float]] = [(0.0, LANES[0], 3.0, 1.0)]  # the ego vehicle
    rows = []
    for index, prior in enumerate(priors):
        count = int(rng.integers(prior.count[0], prior.count[1] + 1))
        if prior.slot not in ("lane_edge", "roadside"):  # cones and barriers stay near the ego vehicle
            count = round(count * reach / 50.0)
        for _ in range(count):
            size = np.asarray(prior.size) * rng.uniform(0.92, 1.08, 3)
            for _attempt in range(30):
                moving = bool(rng.random() < prior.moving_fraction)
                d, speed, yaw, parked = _slot(prior, rng, moving, lane_speeds)
                # Cones and barriers come near the ego vehicle, where they are evaluated (30 m).
                s = rng.uniform(-25, 25) if prior.slot in ("lane_edge", "roadside") else rng.uniform(s_lo, s_hi)
                if abs(np.cos(yaw)) > 0.99:
                    half_s, half_d = size[0] / 2, size[1] / 2
                elif abs(np.sin(yaw)) > 0.99:
                    half_s, half_d = size[1] / 2, size[0] / 2
                else:  # any heading: the footprint's circumscribed circle
                    half_s = half_d = np.hypot(size[0], size[1]) / 2
                if _free(taken, s, d, half_s, half_d):
                    taken.append((s, d, half_s, half_d))
                    rows.append((index, *size, d, s, speed, yaw, prior.reflectivity * rng.uniform(0.6, 1.4), parked))
                    break
    actors = np.array(rows, dtype=np.float64)
    clutter, clutter_reflectivity = _clutter(rng, road, s_lo - 30, s_hi + 30, taken)
    return World(road=road, ego_speed=ego_speed, ego_s0=0.0, priors=priors, actor_class=actors[:, 0].astype(int),
                 actor_size=actors[:, 1:4], actor_d=actors[:, 4], actor_s0=actors[:, 5], actor_speed=actors[:, 6],
                 actor_yaw=actors[:, 7], actor_reflectivity=actors[:, 8], actor_parked=actors[:, 9] > 0,
                 clutter=clutter, clutter_reflectivity=clutter_reflectivity)


def _clutter(rng: np.random.Generator, road: Road, s_lo: float, s_hi: float,
             taken: list[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Buildings, poles and trees along both sides: boxes (C, 7) in the global frame and reflectivities (C,)."""
    rows = []  # s, d, z_bottom, l (along road), w, h, reflectivity
    for side in (-1.0, 1.0):
        s = s_lo
        while s < s_hi:
            length, depth = rng.uniform(8, 30), rng.uniform(8, 20)
            near = rng.uniform(16, 19)
            centre_d = side * (near + depth / 2)
            if _free(taken, s + length / 2, centre_d, length / 2, depth / 2):
                rows.append((s + length / 2, centre_d, 0.0, length, depth, rng.uniform(5, 20), rng.uniform(0.15, 0.5)))
            s += length + rng.uniform(2, 15)
        for s in np.arange(s_lo, s_hi, rng.uniform(15, 30)):
            rows.append((s + rng.uniform(-3, 3), side * 9.95, 0.0, 0.25, 0.25, rng.uniform(6, 8), 0.6))
        for s in np.arange(s_lo + 5, s_hi, rng.uniform(10, 20)):
            if _free(taken, s, side * 14.2, 1.5, 1.5):
                rows.append((s, side * 14.2, 0.0, 0.4, 0.4, 2.5, 0.3))
                rows.append((s, side * 14.2, 2.5, rng.uniform(2.5, 4), rng.uniform(2.5, 4), rng.uniform(2, 4), 0.2))
    rows_arr = np.array(rows, dtype=np.float64)
    xy, heading = road_pose(road, rows_arr[:, 0], rows_arr[:, 1])
    boxes = np.concatenate([xy, rows_arr[:, 2:6], heading[:, None]], axis=1)
    return boxes, rows_arr[:, 6]
