"""Evaluation: a detector over a dataset split (:mod:`predict`), the devkits' submissions and metrics for nuScenes
(:mod:`nuscenes`) and Lyft (:mod:`lyft`), and the conversion of detections to their global-frame boxes
(:mod:`detections`)."""
