"""nuScenes evaluation: detections -> submission JSON (mmdetection3d's formatting) -> the devkit's DetectionEval."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from regnet_explore.data.classes import NUSCENES_CLASS_RANGE, NUSCENES_CLASSES
from regnet_explore.data.dataset import NuScenesData
from regnet_explore.detection.detections import Detections
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.global_boxes import check_complete, detection_arrays, lidar_to_global
from regnet_explore.io import write_json_atomic

MAX_BOXES_PER_SAMPLE = 500
DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "pedestrian": "pedestrian.moving", "trailer": "vehicle.parked",
                     "truck": "vehicle.parked", "bus": "vehicle.moving", "motorcycle": "cycle.without_rider",
                     "construction_vehicle": "vehicle.parked", "bicycle": "cycle.without_rider", "barrier": "",
                     "traffic_cone": ""}
TP_ERRORS = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}


def attribute_name(name: str, speed: float) -> str:
    """mmdetection3d's attribute rule from the class and the predicted speed (m/s)."""
    if speed > 0.2:
        if name in ("car", "construction_vehicle", "bus", "truck", "trailer"):
            return "vehicle.moving"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider"
        return DEFAULT_ATTRIBUTE[name]
    if name == "pedestrian":
        return "pedestrian.standing"
    if name == "bus":
        return "vehicle.stopped"
    return DEFAULT_ATTRIBUTE[name]


def to_submission(data: NuScenesData, detections: Mapping[str, Detections]) -> dict:
    """Detections by sample token -> the devkit's results dict (``meta`` + ``results`` for every split sample).

    Boxes farther from the ego vehicle than their class range are dropped, at most 500 per sample are kept.
    """
    check_complete(data, detections)
    results = {}
    for token in data.tokens:
        boxes, scores, labels = detection_arrays(token, detections[token], data.class_names)
        order = np.argsort(-scores, kind="stable")[:MAX_BOXES_PER_SAMPLE]
        g = lidar_to_global(boxes[order], scores[order], labels[order], *data.transforms(token))
        entries = []
        for i in range(len(order)):
            name = data.class_names[g.labels[i]]
            if g.ego_distance[i] > NUSCENES_CLASS_RANGE[name]:
                continue
            entries.append({"sample_token": token, "translation": g.translation[i].tolist(),
                            "size": g.size[i].tolist(), "rotation": g.rotation[i].tolist(),
                            "velocity": g.velocity[i].tolist(), "detection_name": name,
                            "detection_score": float(g.scores[i]),
                            "attribute_name": attribute_name(name, float(np.hypot(*g.velocity[i])))})
        results[token] = entries
    return {"meta": {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                     "use_external": False}, "results": results}


def write_submission(data: NuScenesData, detections: Mapping[str, Detections], path: str | os.PathLike) -> Path:
    """Write the submission JSON of ``detections`` atomically; returns the path."""
    return write_json_atomic(to_submission(data, detections), path)


def check_submission(data: NuScenesData, result_path: str | os.PathLike) -> None:
    """Raise a one-line error unless ``result_path`` holds results for exactly the split's samples."""
    try:
        with open(result_path) as f:
            results = json.load(f)
    except FileNotFoundError:
        raise RegNetExploreError(f"{result_path}: no such results file") from None
    except json.JSONDecodeError as e:
        raise RegNetExploreError(f"{result_path}: not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(results, dict) or "results" not in results or "meta" not in results:
        raise RegNetExploreError(f"{result_path}: not a nuScenes submission (needs 'meta' and 'results')")
    have, want = set(results["results"]), set(data.tokens)
    if have != want:
        missing, extra = want - have, have - want
        raise RegNetExploreError(f"{result_path}: {len(missing)} samples of {data.version} {data.split} missing"
                                 f"{f' (first: {sorted(missing)[0]})' if missing else ''}, {len(extra)} not in the "
                                 f"split; the devkit needs exactly the split's {len(want)} samples")


def evaluate_submission(data: NuScenesData, result_path: str | os.PathLike, output_dir: str | os.PathLike,
                        verbose: bool = False, class_range: float | None = None) -> dict:
    """Run the devkit's ``DetectionEval`` (config detection_cvpr_2019) on a results JSON; returns the metrics.

    Returned keys: ``mAP``, ``NDS``, ``mATE`` ... ``mAAE``, ``class_AP`` {class: AP}, ``class_AP_dist``
    {class: {threshold: AP}}, ``class_tp_errors`` {class: {trans_err ...: value}}. The devkit also writes
    ``metrics_summary.json`` and ``metrics_details.json`` into ``output_dir``. ``class_range`` (m) replaces the
    config's per-class ranges (50/40/30 m), e.g. for a model trained and run on a cropped range.
    """
    from nuscenes import NuScenes
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    if data.split is None:
        raise RegNetExploreError("evaluation needs a split (e.g. mini_val or val), got all samples")
    check_submission(data, result_path)
    with open(result_path) as f:
        if not any(json.load(f)["results"].values()):
            return empty_metrics()  # the devkit crashes on a submission without a single box
    nusc = NuScenes(version=data.version, dataroot=str(data.dataroot), verbose=verbose)
    config = config_factory("detection_cvpr_2019")
    if class_range is not None:
        config.class_range = {name: class_range for name in config.class_range}
    # quiet unless verbose: DetectionEval prints its table anyway, and its ground-truth loading draws a tqdm bar on
    # stderr (an empty stderr box in notebooks, bar debris in logs)
    with contextlib.ExitStack() as quiet:
        if not verbose:
            quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
            quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
        evaluator = DetectionEval(nusc, config=config, result_path=str(result_path),
                                  eval_set=data.split, output_dir=str(output_dir), verbose=verbose)
        summary = evaluator.main(plot_examples=0, render_curves=False)
    return summarize(summary)


def empty_metrics() -> dict:
    """What DetectionEval would report for no detections at all: zero AP, every TP error at its cap of 1."""
    out = {"mAP": 0.0, "NDS": 0.0, **{short: 1.0 for short in TP_ERRORS.values()}}
    out["class_AP"] = {c: 0.0 for c in NUSCENES_CLASSES}
    out["class_AP_dist"] = {c: {t: 0.0 for t in (0.5, 1.0, 2.0, 4.0)} for c in NUSCENES_CLASSES}
    out["class_tp_errors"] = {}
    return out


def summarize(summary: Mapping) -> dict:
    """The devkit's ``metrics_summary.json`` content -> the flat metric dict documented above."""
    out = {"mAP": summary["mean_ap"], "NDS": summary["nd_score"]}
    out.update({short: summary["tp_errors"][key] for key, short in TP_ERRORS.items()})
    out["class_AP"] = dict(summary["mean_dist_aps"])
    out["class_AP_dist"] = {c: {float(t): ap for t, ap in v.items()} for c, v in summary["label_aps"].items()}
    out["class_tp_errors"] = {c: dict(v) for c, v in summary["label_tp_errors"].items()}
    return out


def evaluate_nuscenes(data: NuScenesData, detections: Mapping[str, Detections], output_dir: str | os.PathLike,
                      verbose: bool = False, class_range: float | None = None) -> dict:
    """Detections -> ``<output_dir>/results_nusc.json`` -> DetectionEval; returns the metrics (see above)."""
    path = write_submission(data, detections, Path(output_dir) / "results_nusc.json")
    return evaluate_submission(data, path, output_dir, verbose, class_range)
