"""Evaluation: a detector over a dataset split (:mod:`predict`, the one split runner; :mod:`testing`, ``regnet-explore
test``), the one detections file (:mod:`detections_file`), the devkits' submissions and metrics for nuScenes
(:mod:`nuscenes`) and Lyft (:mod:`lyft`), and (:mod:`global_boxes`) the conversion of detections to their
global-frame boxes and the ground truth as detections. Every sample's detections are one
:class:`~regnet_explore.detection.detections.Detections`, its labels indexing the dataset's class names."""
