"""How the synthetic generator places each class: table category, size, placement slot, speed, count.

Sizes are (l, w, h) in metres: the mmdetection3d anchor sizes where the reference facts give them, typical
vehicle dimensions otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectPrior:
    """How the generator places one class: table category, size (l, w, h), placement slot, speed, count."""
    name: str
    category: str
    size: tuple[float, float, float]
    slot: str  # 'lane', 'parking', 'bike', 'sidewalk', 'lane_edge', 'roadside', 'offroad'
    speed: float  # typical speed when moving (m/s)
    moving_fraction: float
    count: tuple[int, int]  # inclusive range per scene
    reflectivity: float


NUSCENES_PRIORS = (
    ObjectPrior("car", "vehicle.car", (4.61, 1.95, 1.72), "lane", 8.0, 0.5, (8, 12), 0.35),
    ObjectPrior("truck", "vehicle.truck", (6.74, 2.46, 2.73), "lane", 7.0, 0.5, (1, 2), 0.3),
    ObjectPrior("trailer", "vehicle.trailer", (12.01, 2.87, 3.82), "parking", 0.0, 0.0, (1, 1), 0.3),
    ObjectPrior("bus", "vehicle.bus.rigid", (11.0, 2.93, 3.47), "lane", 6.0, 0.5, (1, 1), 0.35),
    ObjectPrior("construction_vehicle", "vehicle.construction", (6.4, 2.8, 3.2), "offroad", 0.0, 0.0, (1, 1), 0.4),
    ObjectPrior("bicycle", "vehicle.bicycle", (1.68, 0.60, 1.27), "bike", 4.0, 0.5, (1, 2), 0.3),
    ObjectPrior("motorcycle", "vehicle.motorcycle", (2.11, 0.77, 1.47), "lane", 8.0, 0.5, (1, 2), 0.35),
    ObjectPrior("pedestrian", "human.pedestrian.adult", (0.73, 0.66, 1.76), "sidewalk", 1.3, 0.5, (4, 8), 0.25),
    ObjectPrior("traffic_cone", "movable_object.trafficcone", (0.40, 0.40, 1.06), "lane_edge", 0.0, 0.0,
                (3, 5), 0.9),
    ObjectPrior("barrier", "movable_object.barrier", (0.49, 2.49, 0.98), "roadside", 0.0, 0.0, (3, 5), 0.5),
)

LYFT_PRIORS = (
    ObjectPrior("car", "car", (4.75, 1.92, 1.71), "lane", 8.0, 0.5, (8, 12), 0.35),
    ObjectPrior("truck", "truck", (10.24, 2.84, 3.44), "lane", 7.0, 0.5, (1, 2), 0.3),
    ObjectPrior("bus", "bus", (12.70, 2.92, 3.42), "lane", 6.0, 0.5, (1, 1), 0.35),
    ObjectPrior("emergency_vehicle", "emergency_vehicle", (6.52, 2.42, 2.34), "parking", 0.0, 0.0, (1, 1), 0.6),
    ObjectPrior("other_vehicle", "other_vehicle", (8.17, 2.75, 3.20), "parking", 0.0, 0.0, (1, 2), 0.35),
    ObjectPrior("motorcycle", "motorcycle", (2.35, 0.96, 1.59), "lane", 8.0, 0.5, (1, 2), 0.35),
    ObjectPrior("bicycle", "bicycle", (1.76, 0.63, 1.44), "bike", 4.0, 0.5, (1, 2), 0.3),
    ObjectPrior("pedestrian", "pedestrian", (0.80, 0.76, 1.76), "sidewalk", 1.3, 0.5, (4, 8), 0.25),
    ObjectPrior("animal", "animal", (0.73, 0.35, 0.50), "sidewalk", 1.0, 0.5, (1, 1), 0.2),
)
