"""Accuracy of each backend and precision against torch fp32: the official metric and the boxes that match.

For a detector with its shipped weights (default: RegNetX-400MF-FPN nuScenes) on the synthetic validation split
(nuScenes ``mini_val``): exports the ONNX graphs and the int8 graph (sensitivity pass) into ``--work``, then runs
torch fp32 (the reference), torch bf16, ONNX fp32 and ONNX int8 over every frame, scores each with the devkit
(car AP, mAP, NDS) and counts the boxes that match fp32's (same class, every field and the score within 1e-3
relative; ``detections.match``), over all boxes and over those scoring at least 0.2.

    python benchmarks/precision_accuracy.py [--config regnet-400mf-fpn-nus] [--work /tmp/precision] [--frames N]
        [--variants torch:fp32,torch:bf16,onnx:fp32,onnx:int8] [--keep-fp32 auto|none|NODE,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from regnet_explore.data.dataset import open_dataset, validation_split
from regnet_explore.deploy.export import MANIFEST, export_onnx
from regnet_explore.deploy.quantize import format_sensitivity, quantize_export
from regnet_explore.deploy.runtime import OnnxPointPillars, load_detector
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detections import match
from regnet_explore.detection.detector import PointPillars
from regnet_explore.evaluation.predict import flat_metrics, predict_split, score_detections
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.weights import shipped_checkpoint


def build(variant: str, name: str, checkpoint: Path, work: Path):
    backend, precision = variant.split(":")
    if backend == "onnx":
        return OnnxPointPillars(work, precision=precision, config=name)
    return load_detector(name, checkpoint, "cpu", "torch", precision, compile=backend == "compile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="regnet-400mf-fpn-nus")
    parser.add_argument("--work", help="export folder (default: a temporary one)")
    parser.add_argument("--variants", default="torch:fp32,torch:bf16,compile:bf16,onnx:fp32,onnx:int8")
    parser.add_argument("--frames", type=int, help="only the first N validation frames (no metric below 8)")
    parser.add_argument("--keep-fp32", default="auto", help="auto (sensitivity pass), none, or Conv node names")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = get_config(args.config)
    checkpoint = shipped_checkpoint(cfg.name)
    work = Path(args.work or tempfile.mkdtemp(prefix="precision-"))
    reference = PointPillars.from_config(cfg, checkpoint=checkpoint)
    variants = args.variants.split(",")
    if any(v.startswith("onnx") for v in variants) and not (work / MANIFEST).is_file():
        export_onnx(reference, work, checkpoint=checkpoint)
    if "onnx:int8" in variants and not (work / "dense.int8.onnx").is_file():
        keep = None if args.keep_fp32 == "auto" else [] if args.keep_fp32 == "none" else args.keep_fp32.split(",")
        entry = quantize_export(work, reference, keep_fp32=keep)
        print(format_sensitivity(entry), flush=True)
    root = ensure_default_dataset(cfg.dataset)
    data = open_dataset(cfg.dataset, root)
    data = open_dataset(cfg.dataset, root, data.version, split=validation_split(cfg.dataset, data.version))
    if args.frames:
        data = data.head(args.frames)
    rows, ref_dets = [], None
    for variant in variants:
        model = build(variant, cfg.name, checkpoint, work)
        start = time.perf_counter()
        dets = predict_split(model, data)
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            metrics = flat_metrics(score_detections(data, dets, tmp)) if len(data) >= 8 else {}
        ref_dets = dets if ref_dets is None else ref_dets
        both = [(ref_dets[t], dets[t]) for t in data.tokens]
        row = {"variant": variant, "frames": len(data), "seconds": seconds,
               "car_AP": metrics.get("AP_car"), "mAP": metrics.get("mAP"), "NDS": metrics.get("NDS"),
               "boxes": sum(len(d) for _, d in both), "same_count": sum(len(r) == len(d) for r, d in both),
               "matched": float(np.mean(np.concatenate([match(r, d) for r, d in both]))),
               "matched_0.2": float(np.mean(np.concatenate([match(r.above(0.2), d.above(0.2)) for r, d in both])))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{cfg.alias} on synthetic {data.version} {data.split}, {len(data)} frames; reference {variants[0]}")
    print(f"{'variant':12s} {'car AP':>7s} {'mAP':>7s} {'NDS':>7s} {'d mAP':>7s} {'d car':>7s} "
          f"{'same count':>11s} {'matched':>8s} {'>=0.2':>7s}")
    base = rows[0]
    for r in rows:
        def f(key: str, row: dict = r) -> str:
            return "    n/a" if row[key] is None else f"{row[key]:7.4f}"

        def d(key: str, row: dict = r) -> str:
            return "    n/a" if row[key] is None else f"{row[key] - base[key]:+7.4f}"

        print(f"{r['variant']:12s} {f('car_AP')} {f('mAP')} {f('NDS')} {d('mAP')} {d('car_AP')} "
              f"{r['same_count']:>5d} / {r['frames']:<3d} {r['matched']:8.1%} {r['matched_0.2']:7.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
