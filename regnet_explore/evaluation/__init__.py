"""Evaluation: a detector over a dataset split (:mod:`predict`), the devkits' submissions and metrics for nuScenes
(:mod:`nuscenes`) and Lyft (:mod:`lyft`), and (:mod:`detections`) the conversion of detections to their
global-frame boxes, the ground truth as detections and the detections file reader. Every sample's detections are one
:class:`~regnet_explore.detection.detections.Detections`, its labels indexing the dataset's class names."""
