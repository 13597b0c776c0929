"""CLI subcommands of the data part: ``data synth``, ``data info`` and ``data default``."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from regnet_explore.data.dataset import DetectionData, open_dataset, validation_split
from regnet_explore.settings import COUNT, SEED
from regnet_explore.synthetic import FORMATS, ensure_default_dataset, synthesize


def open_from_args(args: argparse.Namespace, split_default: bool) -> DetectionData:
    root = Path(args.dataroot) if args.dataroot else ensure_default_dataset(args.format)
    data = open_dataset(args.format, root, args.version)
    split = args.split or (validation_split(args.format, data.version) if split_default else None)
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
    data = open_from_args(args, split_default=False)
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


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--dataroot", metavar="DIR",
                   help="dataset root (default: the synthetic set under data/synthetic, made if "
                                      "missing); see data/README.md for the layouts")
    p.add_argument("--version", help="table version (default: v1.0-mini / v1.0-trainval found, v1.01-train)")
    p.add_argument("--split", help="mini_train, mini_val, train, val (nuScenes), or a <split>.txt name (Lyft)")


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic nuScenes/Lyft sets and dataset info")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    p = sub.add_parser("synth", help="generate a deterministic synthetic dataset in the devkit format")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="new directory to create")
    p.add_argument("--scenes", type=COUNT.parse, help="number of scenes (default 10 nuScenes, 6 Lyft)")
    p.add_argument("--keyframes", type=COUNT.parse, help="key frames per scene (default 4; 2 Hz, 9 sweeps between)")
    p.add_argument("--seed", type=SEED.parse, default=0)
    p.add_argument("--tables-only", action="store_true", help="write tables only, no point files (benchmarks)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("default", help="make (if missing) the default synthetic set and print its root")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.set_defaults(func=_cmd_default)

    p = sub.add_parser("info", help="key frames, scenes and GT class counts of a dataset split")
    add_dataset_arguments(p)
    p.add_argument("--no-points", action="store_true", help="do not read the first sample's points")
    p.set_defaults(func=_cmd_info)
