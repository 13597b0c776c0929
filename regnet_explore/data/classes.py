"""Class facts of the two datasets: the detection classes (defined once, with the detector configs), nuScenes'
evaluation ranges, attribute and visibility tables."""

from __future__ import annotations

from regnet_explore.detection.configs import LYFT_CLASSES, NUSCENES_CLASSES

# nuScenes detection-class evaluation ranges (m, BEV distance to the ego vehicle), detection_cvpr_2019.
NUSCENES_CLASS_RANGE = {"car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50,
                        "pedestrian": 40, "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}

NUSCENES_ATTRIBUTES = ("vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider",
                       "cycle.without_rider", "pedestrian.sitting_lying_down", "pedestrian.standing",
                       "pedestrian.moving")
NUSCENES_VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))


__all__ = ["LYFT_CLASSES", "NUSCENES_ATTRIBUTES", "NUSCENES_CLASSES", "NUSCENES_CLASS_RANGE", "NUSCENES_VISIBILITY"]
