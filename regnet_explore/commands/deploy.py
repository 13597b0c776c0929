"""``regnet-explore export-onnx``: a config and its weights -> the ONNX export folder (and its int8 graph)."""

from __future__ import annotations

import argparse

from regnet_explore.commands.detection import add_detector_arguments, legacy_flag
from regnet_explore.deploy.export import export_onnx
from regnet_explore.deploy.quantize import format_sensitivity, quantize_export
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.settings import COUNT, POSITIVE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-onnx", help="export a detector as two ONNX graphs (pillar encoder, dense part), optionally int8",
        description="Write encoder.onnx (pillars -> features), dense.onnx (BEV canvas -> head outputs) and "
                    "deploy.json to OUT; with --int8 also dense.int8.onnx, calibrated on synthetic training "
                    "frames. Run them with `regnet-explore infer CONFIG --backend onnx --onnx OUT`. Needs the "
                    "deploy extra (onnx, onnxruntime).")
    add_detector_arguments(p)
    p.add_argument("--out", required=True, metavar="OUT_DIR",
                   help="folder to write (replaced whole if it holds an earlier export)")
    p.add_argument("--int8", action="store_true", help="also write the int8 dense graph (dense.int8.onnx)")
    p.add_argument("--keep-fp32", default="auto", metavar="auto|none|NODE,...",
                   help="with --int8: convolutions kept in float32: auto (default: the per-layer sensitivity pass "
                        "chooses), none, or Conv node names")
    p.add_argument("--max-error", type=POSITIVE.parse, default=0.05,
                   help="with --int8 and auto: output error bound of the int8 graph (default 0.05)")
    p.add_argument("--calibration-frames", type=COUNT.parse, default=16,
                   help="with --int8: training key frames to calibrate on (default 16)")
    p.add_argument("--data", metavar="DIR",
                   help="with --int8: dataset root for calibration (default: the synthetic set)")
    p.set_defaults(func=run_export_onnx)


def run_export_onnx(args: argparse.Namespace) -> int:
    if not args.int8 and args.data is not None:
        raise RegNetExploreError(f"--data {args.data}: the calibration set of --int8; without --int8 nothing reads it")
    cfg = get_config(args.config)
    model = PointPillars.from_config(cfg, checkpoint=args.checkpoint, legacy=legacy_flag(args))
    out = export_onnx(model, args.out, checkpoint=args.checkpoint)
    print(f"{out}: encoder.onnx, dense.onnx, deploy.json ({cfg.name})")
    if args.int8:
        keep = {"auto": None, "none": []}.get(args.keep_fp32, args.keep_fp32.split(",") if args.keep_fp32 else [])
        entry = quantize_export(out, model, calibration_frames=args.calibration_frames, max_error=args.max_error,
                                keep_fp32=keep, dataroot=args.data)
        print(format_sensitivity(entry))
        print(f"{out}: dense.int8.onnx ({len(entry['keep_fp32'])} convolutions kept in float32)")
    return 0
