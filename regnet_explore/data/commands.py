"""CLI subcommands of the data part: ``data synth``, ``data info``, ``data default`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from regnet_explore.data.dataset import NUSCENES_SPLITS, DetectionData, open_dataset
from regnet_explore.data.synthetic import FORMATS, ensure_default_dataset, synthesize
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import load_checkpoint


def _default_split(data_fmt: str, version: str) -> str:
    return NUSCENES_SPLITS[version][-1] if data_fmt == "nuscenes" else "val"


def _open(args: argparse.Namespace, split_default: bool) -> DetectionData:
    root = Path(args.dataroot) if args.dataroot else ensure_default_dataset(args.format)
    data = open_dataset(args.format, root, args.version)
    split = args.split or (_default_split(args.format, data.version) if split_default else None)
    return open_dataset(args.format, root, data.version, split) if split else data


def _cmd_synth(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = synthesize(args.format, args.out, args.scenes, args.keyframes, args.seed, cast_lidar=not args.tables_only)
    print(f"{args.format} synthetic set written to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_default(args: argparse.Namespace) -> int:
    print(ensure_default_dataset(args.format))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    data = _open(args, split_default=False)
    print(f"{data.dataroot} {data.version} split {data.split or 'all'}: {len(data)} key frames, "
          f"{len(data.scene_names())} scenes in the index")
    counts: Counter[str] = Counter()
    for token in data.tokens:
        counts.update(data.sample(token, with_points=False).gt_names)
    print("GT boxes: " + ", ".join(f"{n} {counts[n]}" for n in data.class_names))
    if len(data) and not args.no_points:
        s = data.sample(len(data) - 1)  # the last key frame of a scene has its full set of sweeps
        print(f"sample {s.token}: {len(s.points)} points with sweeps "
              f"(time lag up to {s.points[:, 4].max():.2f} s), {len(s.gt_boxes)} GT boxes")
    return 0


def _load_detections(path: str) -> dict:
    raw = load_checkpoint(path)
    if not isinstance(raw, dict):
        raise RegNetExploreError(f"{path}: expected a dict of sample token -> {{boxes, scores, labels}}")
    return {t: {k: np.asarray(v) for k, v in d.items()} for t, d in raw.items()}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    data = _open(args, split_default=True)
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="regnet-explore-eval-"))
    if args.results and args.format == "lyft":
        raise RegNetExploreError(f"--results {args.results}: a nuScenes submission JSON; for Lyft give --detections")
    if args.results:
        from regnet_explore.data.nuscenes_eval import evaluate_submission
        metrics = evaluate_submission(data, args.results, out_dir)
        print(f"devkit metric files: {out_dir}")
    else:
        if args.oracle:
            from regnet_explore.data.detections import oracle_detections
            detections = oracle_detections(data)
        elif args.detections:
            detections = _load_detections(args.detections)
        else:
            raise RegNetExploreError("evaluate: give --detections FILE.pt, --results FILE.json (nuScenes) "
                                     "or --oracle")
        if args.format == "nuscenes":
            from regnet_explore.data.nuscenes_eval import evaluate_nuscenes
            metrics = evaluate_nuscenes(data, detections, out_dir)
            print(f"submission and devkit metric files: {out_dir}")
        else:
            from regnet_explore.data.lyft_eval import evaluate_lyft, write_submission_csv
            metrics = evaluate_lyft(data, detections)
            if args.lyft_csv:
                print(f"submission CSV: {write_submission_csv(data, detections, args.lyft_csv)}")
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    print(json.dumps(summary, indent=1))
    print("per class AP: " + ", ".join(f"{c} {ap:.4f}" for c, ap in metrics["class_AP"].items()))
    return 0


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--dataroot", help="dataset root (default: the synthetic set under data/synthetic, made if "
                                      "missing); see data/README.md for the layouts")
    p.add_argument("--version", help="table version (default: v1.0-mini / v1.0-trainval found, v1.01-train)")
    p.add_argument("--split", help="mini_train, mini_val, train, val (nuScenes), or a <split>.txt name (Lyft)")


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic nuScenes/Lyft sets and dataset info")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    p = sub.add_parser("synth", help="generate a deterministic synthetic dataset in the devkit format")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, help="new directory to create")
    p.add_argument("--scenes", type=int, help="number of scenes (default 10 nuScenes, 6 Lyft)")
    p.add_argument("--keyframes", type=int, help="key frames per scene (default 4; 2 Hz, 9 sweeps between)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tables-only", action="store_true", help="write tables only, no point files (benchmarks)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("default", help="make (if missing) the default synthetic set and print its root")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.set_defaults(func=_cmd_default)

    p = sub.add_parser("info", help="key frames, scenes and GT class counts of a dataset split")
    _dataset_args(p)
    p.add_argument("--no-points", action="store_true", help="do not read the first sample's points")
    p.set_defaults(func=_cmd_info)

    p = subparsers.add_parser("evaluate", help="nuScenes DetectionEval (mAP, NDS) or Lyft mAP@0.5:0.95")
    _dataset_args(p)
    p.add_argument("--detections", help="torch file: dict sample token -> {boxes (K, 7|9), scores, labels}")
    p.add_argument("--results", help="nuScenes submission JSON to evaluate as is")
    p.add_argument("--oracle", action="store_true", help="evaluate the ground truth itself (perfect detector)")
    p.add_argument("--out-dir", help="where the nuScenes devkit writes its files (default: a new temporary folder)")
    p.add_argument("--lyft-csv", help="also write a Lyft Kaggle submission CSV here")
    p.set_defaults(func=_cmd_evaluate)
