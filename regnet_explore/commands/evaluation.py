"""``regnet-explore evaluate`` (the official metrics of a detections file or a nuScenes submission) and
``regnet-explore test`` (a detector over a whole split)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from regnet_explore.commands.data import add_dataset_arguments, open_from_args
from regnet_explore.detection.configs import get_config
from regnet_explore.errors import RegNetExploreError, one_line_warnings
from regnet_explore.evaluation.detections_file import read_detections
from regnet_explore.evaluation.global_boxes import oracle_detections
from regnet_explore.evaluation.lyft import evaluate_lyft, write_submission_csv
from regnet_explore.evaluation.nuscenes import evaluate_nuscenes, evaluate_submission
from regnet_explore.evaluation.testing import RandomWeightsWarning, TestConfig, format_metrics, run_test
from regnet_explore.settings import arg


def _nuscenes_out_dir(args: argparse.Namespace) -> Path:
    """Where the devkit writes its files: ``--out-dir``, else a new temporary folder (made only when it is used)."""
    return Path(args.out_dir or tempfile.mkdtemp(prefix="regnet-explore-eval-"))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.lyft_csv and args.format != "lyft":
        raise RegNetExploreError(f"--lyft-csv {args.lyft_csv}: a Lyft submission; nuScenes' goes to --out-dir")
    if args.results and args.format == "lyft":
        raise RegNetExploreError(f"--results {args.results}: a nuScenes submission JSON; for Lyft give --detections")
    data = open_from_args(args, split_default=True)
    if args.results:
        out_dir = _nuscenes_out_dir(args)
        metrics = evaluate_submission(data, args.results, out_dir)
        print(f"devkit metric files: {out_dir}")
    else:
        if args.oracle:
            detections = oracle_detections(data)
        elif args.detections:
            detections = read_detections(args.detections, data.class_names)
        else:
            raise RegNetExploreError("evaluate: give --detections FILE.jsonl, --results FILE.json (nuScenes) "
                                     "or --oracle")
        if args.format == "nuscenes":
            out_dir = _nuscenes_out_dir(args)
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


def _cmd_test(args: argparse.Namespace) -> int:
    cfg = TestConfig(config=args.config, checkpoint=args.checkpoint, data=args.data, version=args.version,
                     split=args.split, out=args.out, device=args.device, batch_size=args.batch_size,
                     workers=args.workers, limit=args.limit, resume=args.resume, score_thr=args.score_thr)
    with one_line_warnings("test", RandomWeightsWarning):
        result = run_test(cfg)
    fps = f" ({result.ran} run now, {result.ran / result.seconds:.2f} frames/s)" if result.seconds else ""
    print(f"{result.frames} key frames{fps}; detections {result.detections}; submission {result.submission}")
    if result.metrics is None:
        print("metrics: not computed (--limit: nuScenes' DetectionEval scores whole splits)")
    else:
        print(format_metrics(result.metrics, get_config(args.config).dataset))
        print(f"metrics written to {Path(args.out) / 'metrics.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("test", help="a detector over a dataset split: submission + official metrics",
                       description="Run a detector over a whole split as mmdetection3d's tools/test.py does: key "
                                   "frames with their sweeps, batched on the device, detections streamed to "
                                   "OUT/detections.jsonl (resumable), then the submission (nuScenes "
                                   "results_nusc.json, Lyft submission.csv) and the official metrics "
                                   "(OUT/metrics.json).")
    t.add_argument("config", help="detector config name or alias (see `regnet-explore configs`)")
    t.add_argument("--checkpoint", metavar="FILE",
                   help="mmdet3d-layout checkpoint (.pth), legacy (pre-1.0) ones included; "
                                        "random weights if omitted")
    t.add_argument("--data", metavar="DIR", help="dataset root (default: the synthetic set of the config's dataset)")
    t.add_argument("--version", help="table version (default: the one found under --data)")
    t.add_argument("--split", help="split to run (default: mini_val / val)")
    t.add_argument("--out", default="work_dirs/test", metavar="OUT_DIR", help="output folder (default work_dirs/test)")
    t.add_argument("--device", default="cpu", help="torch device (default cpu)")
    t.add_argument("--batch-size", type=arg(TestConfig, "batch_size"), default=1,
                   help="clouds per forward pass (default 1)")
    t.add_argument("--workers", type=arg(TestConfig, "workers"), default=2,
                   help="data-loading worker processes (default 2; 0: inline)")
    t.add_argument("--limit", type=arg(TestConfig, "limit"),
                   help="only the first N key frames (Lyft scores them; nuScenes does not)")
    t.add_argument("--resume", action="store_true", help="continue a killed run from the frames already done")
    t.add_argument("--score-thr", type=arg(TestConfig, "score_thr"),
                   help="override the config's score threshold (0.05)")
    t.set_defaults(func=_cmd_test)

    p = sub.add_parser("evaluate", help="nuScenes DetectionEval (mAP, NDS) or Lyft mAP@0.5:0.95")
    add_dataset_arguments(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--detections", metavar="FILE",
                        help="a detections file (JSON lines, as `regnet-explore test` writes "
                                         "OUT/detections.jsonl; docs: evaluation.detections_file)")
    source.add_argument("--results", metavar="FILE", help="nuScenes submission JSON to evaluate as is")
    source.add_argument("--oracle", action="store_true", help="evaluate the ground truth itself (perfect detector)")
    p.add_argument("--out-dir", metavar="OUT_DIR",
                   help="where the nuScenes devkit writes its files (default: a new temporary folder)")
    p.add_argument("--lyft-csv", metavar="OUT_FILE", help="also write a Lyft Kaggle submission CSV here")
    p.set_defaults(func=_cmd_evaluate)
