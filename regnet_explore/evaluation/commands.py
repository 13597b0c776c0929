"""``regnet-explore evaluate``: the official metrics of a detections file or a nuScenes submission."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from regnet_explore.data.commands import add_dataset_arguments, open_from_args
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.global_boxes import load_detections, oracle_detections
from regnet_explore.evaluation.lyft import evaluate_lyft, write_submission_csv
from regnet_explore.evaluation.nuscenes import evaluate_nuscenes, evaluate_submission


def _cmd_evaluate(args: argparse.Namespace) -> int:
    data = open_from_args(args, split_default=True)
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="regnet-explore-eval-"))
    if args.results and args.format == "lyft":
        raise RegNetExploreError(f"--results {args.results}: a nuScenes submission JSON; for Lyft give --detections")
    if args.results:
        metrics = evaluate_submission(data, args.results, out_dir)
        print(f"devkit metric files: {out_dir}")
    else:
        if args.oracle:
            detections = oracle_detections(data)
        elif args.detections:
            detections = load_detections(args.detections, data.class_names)
        else:
            raise RegNetExploreError("evaluate: give --detections FILE.pt, --results FILE.json (nuScenes) "
                                     "or --oracle")
        if args.format == "nuscenes":
            metrics = evaluate_nuscenes(data, detections, out_dir)
            print(f"submission and devkit metric files: {out_dir}")
        else:
            metrics = evaluate_lyft(data, detections)
            if args.lyft_csv:
                print(f"submission CSV: {write_submission_csv(data, detections, args.lyft_csv)}")
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    print(json.dumps(summary, indent=1))
    print("per class AP: " + ", ".join(f"{c} {ap:.4f}" for c, ap in metrics["class_AP"].items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="nuScenes DetectionEval (mAP, NDS) or Lyft mAP@0.5:0.95")
    add_dataset_arguments(p)
    p.add_argument("--detections", help="torch file: dict sample token -> {boxes (K, 7|9), scores, labels}")
    p.add_argument("--results", help="nuScenes submission JSON to evaluate as is")
    p.add_argument("--oracle", action="store_true", help="evaluate the ground truth itself (perfect detector)")
    p.add_argument("--out-dir", help="where the nuScenes devkit writes its files (default: a new temporary folder)")
    p.add_argument("--lyft-csv", help="also write a Lyft Kaggle submission CSV here")
    p.set_defaults(func=_cmd_evaluate)
