"""Detection subcommands: ``infer`` (boxes for one point file) and ``configs`` (the table of detectors, or one
config whole)."""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np

from regnet_explore.data.dataset import open_dataset
from regnet_explore.data.points import key_frame_points, load_points_bin
from regnet_explore.deploy.runtime import load_detector
from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.detection.checkpoint import export_weights
from regnet_explore.detection.configs import (
    CONFIGS,
    DetectorConfig,
    EncoderConfig,
    FPNNeckConfig,
    RegNetBackboneConfig,
    SECONDBackboneConfig,
    SECONDFPNNeckConfig,
    detector_complexity,
    get_config,
)
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import write_json_atomic
from regnet_explore.settings import COUNT_0, PROBABILITY, Domain, check_device
from regnet_explore.synthetic import ensure_default_dataset

POINT_DIMS = Domain(int, 3)  # values per point in a .bin file: x, y, z at least

# the mmdet3d ``type`` of each part, as its config files write it
MMDET3D_TYPES: dict[type, str] = {EncoderConfig: "HardVFE", RegNetBackboneConfig: "NoStemRegNet",
                                  SECONDBackboneConfig: "SECOND", FPNNeckConfig: "FPN",
                                  SECONDFPNNeckConfig: "SECONDFPN", AnchorConfig: "AlignedAnchor3DRangeGenerator"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("infer", help="detect 3D boxes in one LiDAR frame (a .bin file or a dataset sample)",
                              description="Run a PointPillars detector on one frame: a .bin point file is one sweep "
                                          "(x, y, z kept, time-lag 0; a 10-sweep model then sees a tenth of its "
                                          "usual input), a dataset sample (--sample TOKEN) is its key frame with "
                                          "the 10 sweeps before it, as `regnet-explore test` loads it.")
    add_detector_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--points", metavar="FILE",
                        help="point file, float32 with --load-dim values per point (one sweep)")
    source.add_argument("--sample", metavar="TOKEN", help="a key frame of the dataset at --data, with its sweeps")
    p.add_argument("--data", metavar="DIR",
                   help="with --sample: dataset root (default: the synthetic set of the config's dataset)")
    p.add_argument("--version", help="with --sample: table version (default: the one found under --data)")
    p.add_argument("--sweeps", type=COUNT_0.parse, default=10,
                   help="with --sample: sweeps merged into the key frame (default 10, as every reference config); "
                        "a --points file is always one sweep")
    p.add_argument("--load-dim", type=POINT_DIMS.parse, default=5,
                   help="values per point in the file (default 5: nuScenes/Lyft)")
    p.add_argument("--out", metavar="OUT_FILE", help="write predictions as JSON here")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default) or the ONNX graphs of --onnx DIR run by onnxruntime (the deploy extra)")
    p.add_argument("--onnx", metavar="DIR", help="with --backend onnx: a folder made by `regnet-explore export-onnx`")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"), default="auto",
                   help="arithmetic of the dense part: auto (fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16 on "
                        "torch; fp32 or int8 (the folder's dense.int8.onnx) on onnx")
    p.add_argument("--compile", action="store_true",
                   help="torch backend: the dense part under torch.compile (worth it with bf16 on CPU; the first "
                        "frame compiles, ~15 s)")
    p.add_argument("--score-thr", type=PROBABILITY.parse, help="override the config's score threshold (0.05)")
    p.set_defaults(func=run_infer)
    c = subparsers.add_parser("configs", help="list the detector configs with size and cost, or show one whole")
    c.add_argument("--show", metavar="NAME", help="print every setting of one config (mmdet3d name or alias)")
    c.set_defaults(func=run_configs)
    e = subparsers.add_parser("export", help="a training checkpoint -> weights only, fp16 (the shipped format)")
    e.add_argument("checkpoint", metavar="FILE", help="a training checkpoint")
    e.add_argument("out", metavar="OUT_FILE", help="the weights file to write")
    e.add_argument("--fp32", action="store_true", help="keep float32")
    e.set_defaults(func=run_export)


def add_detector_arguments(p: argparse.ArgumentParser) -> None:
    """CONFIG, --checkpoint and --legacy: which detector with which weights (read back by :func:`legacy_flag`)."""
    p.add_argument("config", help="detector config name or alias (see `regnet-explore configs`)")
    p.add_argument("--checkpoint", metavar="FILE", help="mmdet3d-layout checkpoint (.pth); random weights if omitted")
    p.add_argument("--legacy", choices=("auto", "yes", "no"), default="auto",
                   help="pre-1.0 mmdet3d box convention of the weights (default: read from the checkpoint)")


def legacy_flag(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.legacy]


def run_export(args: argparse.Namespace) -> int:
    size = export_weights(args.checkpoint, args.out, half=not args.fp32)
    print(f"{args.out}: {size / 2**20:.1f} MiB")
    return 0


def run_infer(args: argparse.Namespace) -> int:
    device = check_device(args.device)
    cfg = get_config(args.config)
    if args.sample is not None:
        root = args.data if args.data is not None else ensure_default_dataset(cfg.dataset)
        data = open_dataset(cfg.dataset, root, args.version, sweeps=args.sweeps)
        points = data.sample(args.sample).network_points()
        source = {"dataroot": os.fspath(root), "sample": args.sample}
    else:
        given = [o for o, v in (("--data", args.data), ("--version", args.version)) if v is not None]
        if given:
            raise RegNetExploreError(f"{' and '.join(given)}: read a dataset sample (--sample TOKEN); a --points "
                                     "file is read on its own")
        points = key_frame_points(load_points_bin(args.points, args.load_dim), args.points)
        source = {"points_file": os.fspath(args.points)}
    model = load_detector(cfg, args.checkpoint, device, args.backend, args.precision, args.onnx,
                          legacy_flag(args),
                          compile=args.compile)
    det = model.predict(points, score_thr=args.score_thr)
    payload = {"config": cfg.name, **source, "checkpoint": args.checkpoint, "backend": args.backend,
               "precision": args.precision, "legacy": model.legacy, "num_points": len(points),
               "box_format": ["x", "y", "z_bottom", "l", "w", "h", "yaw"] + (["vx", "vy"] if cfg.code_size == 9
                                                                            else []),
               **det.to_dict()}
    if args.out:
        write_json_atomic(payload, args.out)
    counts = np.bincount(det.labels.cpu().numpy(), minlength=cfg.num_classes)
    per_class = ", ".join(f"{n} {cfg.class_names[i]}" for i, n in enumerate(counts) if n) or "none"
    weights = args.checkpoint or "random weights (no --checkpoint)"
    print(f"{cfg.name}: {len(det.scores)} boxes from {len(points)} points ({per_class}); weights: {weights}"
          + (f"; written to {args.out}" if args.out else ""))
    return 0


def config_rows() -> list[dict]:
    """One row per config: name, alias, backbone, neck, dataset, params (whole detector), dense GFLOPs."""
    rows = []
    for cfg in CONFIGS.values():
        rows.append({"name": cfg.name, "alias": cfg.alias, "backbone": cfg.backbone.label, "neck": cfg.neck.label,
                     "dataset": cfg.dataset, "params": sum(p.numel() for p in PointPillars(cfg).parameters()),
                     "gflops": detector_complexity(cfg)["flops"] / 1e9})
    return rows


def _value(value: object) -> str:
    """A scalar or a flat sequence as a config file writes it; strings (an arch name, class names) bare."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _setting_lines(name: str, value: object, indent: str) -> list[str]:
    """``name: value``; a part (dataclass) as a nested section led by its mmdet3d type; a table (anchor ranges,
    sizes) one row per line."""
    if dataclasses.is_dataclass(value):
        kind = MMDET3D_TYPES.get(type(value))
        lines = [f"{indent}{name}:"] + ([f"{indent}  type: {kind}"] if kind else [])
        for f in dataclasses.fields(value):
            lines += _setting_lines(f.name, getattr(value, f.name), indent + "  ")
        return lines
    if isinstance(value, tuple | list) and value and all(isinstance(v, tuple | list) for v in value):
        return [f"{indent}{name}:"] + [f"{indent}  - {_value(v)}" for v in value]
    return [f"{indent}{name}: {_value(value)}"]


def format_config(cfg: DetectorConfig) -> str:
    """Every setting of ``cfg``, nested by part (voxel, encoder, backbone, neck, anchors, test_cfg)."""
    lines = [f"{cfg.name} (alias {cfg.alias})"]
    for f in dataclasses.fields(cfg):
        if f.name not in ("name", "alias"):
            lines += _setting_lines(f.name, getattr(cfg, f.name), "")
    return "\n".join(lines)


def run_configs(args: argparse.Namespace) -> int:
    if args.show:
        print(format_config(get_config(args.show)))
        return 0
    rows = config_rows()
    print(f"{'alias':36s} {'backbone':14s} {'neck':6s} {'dataset':8s} {'params':>11s} {'GFLOPs':>7s}  name")
    for r in rows:
        print(f"{r['alias']:36s} {r['backbone']:14s} {r['neck']:6s} {r['dataset']:8s} {r['params']:>11,d} "
              f"{r['gflops']:7.1f}  {r['name']}")
    print("GFLOPs: multiply-adds of backbone + neck + head on the config's BEV grid (pycls counting).")
    return 0
