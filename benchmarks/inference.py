"""PointPillars inference benchmark: per-stage latency, frames/s, peak memory, achieved GFLOP/s.

Synthetic LiDAR-like clouds (~300k points over 10 sweeps: rings on a ground plane, walls, car-sized boxes),
so voxelization and the pillar encoder see a realistic ~30-40k pillars. The same run times a plain dense 3x3
conv (256 -> 256 on 200 x 200, channels_last) as this machine's reference throughput and reports each dense
stage's GFLOP/s as a fraction of it. Decode + NMS is timed twice: with the randomly initialised head and with
a realistic score distribution (a few hundred confident anchors), since an untrained head's scores decide
how many boxes reach NMS.

Every figure is the best (minimum) time over the repeats, and the reference conv is re-measured right before
each config; fractions use the best reference seen in the run. On a shared machine the minimum is the figure
least disturbed by other load, and the best reference keeps the fractions conservative.

Then, per config, the backends and precisions (``--variants``): torch fp32 eager (the baseline), torch bf16
(autocast: oneDNN's AVX512-BF16 kernels), the ONNX graphs on onnxruntime in fp32 and int8 (``--onnx DIR`` with a
``dense.int8.onnx``), optionally torch.compile: per-stage time, total, frames/s and the dense-part and whole-frame
speed-ups over the baseline, all measured in the same run with the shipped weights where they exist.

    python benchmarks/inference.py [--configs a,b] [--repeats 5] [--threads N] [--device cpu|cuda] [--quick]
        [--variants torch:fp32,torch:bf16,onnx:fp32,onnx:int8 --onnx DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from regnet_explore.deploy.export import export_onnx
from regnet_explore.deploy.runtime import OnnxPointPillars, load_detector
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.timing import DEPLOY_STAGES, STAGES, dense_stages, stage_timer
from regnet_explore.errors import RegNetExploreError
from regnet_explore.runtime import tune_allocator
from regnet_explore.weights import shipped_checkpoint

DEFAULT_CONFIGS = ("regnet-400mf-fpn-nus", "regnet-1.6gf-fpn-nus", "secfpn-nus", "regnet-400mf-fpn-lyft-range100")


def synthetic_cloud(num_points: int = 300_000, sweeps: int = 10, seed: int = 0) -> torch.Tensor:
    """(N, 4) x, y, z, time-lag: a 32-beam spinning LiDAR over flat ground with walls and box obstacles."""
    g = torch.Generator().manual_seed(seed)
    per_sweep = num_points // sweeps
    clouds = []
    for s in range(sweeps):
        n_ground, n_boxes = int(per_sweep * 0.7), int(per_sweep * 0.15)
        n_walls = per_sweep - n_ground - n_boxes
        # ground: 32 rings, denser near the car, radial noise; ego moves 0.5 m per sweep
        ring = torch.randint(0, 32, (n_ground,), generator=g)
        radius = 2.5 * 1.1 ** ring.float() + torch.randn(n_ground, generator=g) * 0.15
        azimuth = torch.rand(n_ground, generator=g) * 2 * torch.pi
        ground = torch.stack([radius * azimuth.cos() - 0.5 * s, radius * azimuth.sin(),
                              -1.8 + torch.randn(n_ground, generator=g) * 0.05], 1)
        # walls: two long facades along x at |y| ~ 20 m
        wx = torch.rand(n_walls, generator=g) * 100 - 50
        wy = torch.where(torch.rand(n_walls, generator=g) < 0.5, 20.0, -22.0) + torch.randn(n_walls, generator=g) * 0.1
        walls = torch.stack([wx, wy, torch.rand(n_walls, generator=g) * 5 - 1.8], 1)
        # 40 car-sized boxes, same place in every sweep (seeded separately)
        gb = torch.Generator().manual_seed(seed + 1000)
        centres = torch.rand(40, 2, generator=gb) * 80 - 40
        which = torch.randint(0, 40, (n_boxes,), generator=g)
        local = (torch.rand(n_boxes, 3, generator=g) - 0.5) * torch.tensor([4.5, 1.9, 1.6])
        boxes = torch.cat([centres[which] + local[:, :2], local[:, 2:] - 1.0], 1)
        xyz = torch.cat([ground, walls, boxes])
        clouds.append(torch.cat([xyz, torch.full((len(xyz), 1), 0.05 * s)], 1))
    return torch.cat(clouds)


def conv_reference(device: torch.device, repeats: int) -> float:
    """GFLOP/s (2 x multiply-adds) of a 3x3 conv 256 -> 256 on 200 x 200, channels_last (fp16 on CUDA)."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    x = torch.randn(1, 256, 200, 200, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype).to(
        memory_format=torch.channels_last)
    flops = 2 * 256 * 256 * 9 * 200 * 200
    with torch.no_grad():
        conv(x)
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            conv(x)
            sync(device)
            times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def realistic_outputs(outs: tuple[list[torch.Tensor], ...], seed: int = 0) -> tuple[list[torch.Tensor], ...]:
    """Head outputs with a trained-like score distribution: background logits ~ N(-7, 1), and 2 x 2 clusters
    of confident anchors around 20 objects per level."""
    g = torch.Generator(device=outs[0][0].device).manual_seed(seed)
    cls = []
    for level in outs[0]:
        logits = torch.randn(level.shape, generator=g, device=level.device) - 7.0
        b, c, h, w = level.shape
        ys = torch.randint(0, h, (20,), generator=g, device=level.device)
        xs = torch.randint(0, w, (20,), generator=g, device=level.device)
        ch = torch.randint(0, c, (20,), generator=g, device=level.device)
        for dy in (0, 1):
            for dx in (0, 1):
                logits[0, ch, (ys + dy).clamp(max=h - 1), (xs + dx).clamp(max=w - 1)] = 2.0 + dy + dx
        cls.append(logits.to(level.dtype))
    return (cls, outs[1], outs[2])


def bench_config(name: str, device: torch.device, repeats: int, cloud: torch.Tensor) -> dict:
    model = PointPillars.from_config(name, device=device)
    cfg = model.cfg
    cx = model.complexity()
    cloud = cloud.to(device)
    with torch.no_grad():
        model.predict(cloud)  # warm-up (anchors, allocator, kernels)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        runs = []
        for _ in range(repeats):
            with stage_timer(model) as t:
                model.predict(cloud)
            runs.append(t)
        stage = {k: min(r[k] for r in runs) for k in STAGES}
        pillars = len(model.voxelize([cloud]).num_points)
        outs = model([cloud])
        real = realistic_outputs(outs)
        flat = ([torch.zeros_like(c) for c in outs[0]], outs[1], outs[2])  # every score 0.5: the worst case
        decode_random, decode_real, decode_flat, boxes = [], [], [], {}
        for _ in range(repeats):
            for label, o, store in (("random", outs, decode_random), ("realistic", real, decode_real),
                                    ("flat", flat, decode_flat)):
                sync(device)
                start = time.perf_counter()
                det = model.pts_bbox_head.decode(*o, cfg.test_cfg, cfg.class_names)
                sync(device)
                store.append(time.perf_counter() - start)
                boxes[label] = len(det[0].scores)
    total = sum(stage.values())
    dense = stage["backbone"] + stage["neck"] + stage["head"]
    light = stage["voxelize"] + stage["encoder"] + stage["scatter"] + min(decode_real)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gfs = {k: 2 * cx[f"{k}_flops"] / stage[k] / 1e9 for k in ("backbone", "neck", "head")}
    return {"config": cfg.alias, "pillars": pillars, "points": len(cloud), "stage": stage,
            "total": total, "fps": 1 / total, "peak_mb": peak, "gfs": gfs, "dense_gfs": 2 * cx["flops"] / dense / 1e9,
            "light_share": light / (light + dense),
            "decode_random": min(decode_random), "decode_real": min(decode_real), "decode_flat": min(decode_flat),
            "boxes": boxes, "gflops": cx["flops"] / 1e9}


def variant_model(variant: str, name: str, device: torch.device, onnx_dirs: dict[str, Path]):
    """``backend:precision`` -> a detector with the shipped weights where they exist (so that int8 runs the
    graph calibrated for them); ``compile:<precision>`` is torch with the dense part under torch.compile."""
    backend, precision = variant.split(":")
    checkpoint = shipped_checkpoint(name)
    if backend == "onnx":
        if name not in onnx_dirs:
            onnx_dirs[name] = Path(tempfile.mkdtemp(prefix="onnx-"))
            export_onnx(PointPillars.from_config(name, checkpoint=checkpoint), onnx_dirs[name], checkpoint)
        return OnnxPointPillars(onnx_dirs[name], device, precision, config=name)
    return load_detector(name, checkpoint, device, "torch", precision, compile=backend == "compile")


def bench_variants(name: str, device: torch.device, repeats: int, cloud: torch.Tensor, variants: list[str],
                   onnx_dirs: dict[str, Path]) -> list[dict]:
    """Per variant the best time per stage (:data:`DEPLOY_STAGES`) and in total, over ``repeats`` frames."""
    rows = []
    cloud = cloud.to(device)
    for variant in variants:
        try:
            model = variant_model(variant, name, device, onnx_dirs)
        except RegNetExploreError as e:
            print(f"  {variant}: skipped ({e})")
            continue
        start = time.perf_counter()
        model.predict(cloud)  # warm-up (and compilation)
        warm = time.perf_counter() - start
        runs = []
        for _ in range(repeats):
            with stage_timer(model) as t:
                model.predict(cloud)
            runs.append(dense_stages(t))
        stage = {k: min(r[k] for r in runs) for k in DEPLOY_STAGES}
        total = min(sum(r.values()) for r in runs)
        rows.append({"variant": variant, "stage": stage, "total": total, "first_s": warm})
    return rows


def report_variants(name: str, rows: list[dict]) -> None:
    base = rows[0]
    print(f"\n== {name}: backends and precisions (best of the repeats; ratios against {base['variant']} eager, "
          f"same run)")
    print(f"  {'variant':14s}" + "".join(f"{k:>10s}" for k in DEPLOY_STAGES)
          + f"{'total':>9s}{'frames/s':>10s}{'dense x':>9s}{'total x':>9s}{'first':>8s}")
    for r in rows:
        s = r["stage"]
        print(f"  {r['variant']:14s}" + "".join(f"{1000 * s[k]:8.1f}ms" for k in DEPLOY_STAGES)
              + f"{1000 * r['total']:7.0f}ms{1 / r['total']:10.2f}{base['stage']['dense'] / s['dense']:9.2f}"
              + f"{base['total'] / r['total']:9.2f}{r['first_s']:7.1f}s")


def report(r: dict, conv_gflops: float) -> None:
    s = r["stage"]
    print(f"\n== {r['config']}: {r['points']:,} points -> {r['pillars']:,} pillars; dense part {r['gflops']:.1f} "
          f"GMAC")
    print("  " + "  ".join(f"{k} {1000 * s[k]:.0f} ms" for k in STAGES))
    print(f"  total {1000 * r['total']:.0f} ms = {r['fps']:.2f} frames/s; peak memory {r['peak_mb']:.0f} MB")
    print("  achieved: " + ", ".join(f"{k} {v:.1f} GFLOP/s ({v / conv_gflops:.0%})" for k, v in r["gfs"].items())
          + f"; dense part {r['dense_gfs']:.1f} GFLOP/s = {r['dense_gfs'] / conv_gflops:.0%} of the plain conv")
    print(f"  decode+NMS: random-init head {1000 * r['decode_random']:.0f} ms ({r['boxes']['random']} boxes), "
          f"realistic scores {1000 * r['decode_real']:.0f} ms ({r['boxes']['realistic']} boxes), "
          f"all scores 0.5 {1000 * r['decode_flat']:.0f} ms ({r['boxes']['flat']} boxes)")
    print(f"  voxelize + encode + scatter + decode/NMS (realistic) = {r['light_share']:.1%} of the total "
          f"[target < 15%]; dense >= 50% of plain conv: {'yes' if r['dense_gfs'] >= 0.5 * conv_gflops else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help="comma-separated names or aliases")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--quick", action="store_true", help="one config, 2 repeats, 100k points, torch fp32 only")
    parser.add_argument("--variants", help="backend:precision list timed against the first (default on CPU: "
                        "torch:fp32,torch:bf16,onnx:fp32, plus onnx:int8 with --onnx; on CUDA: torch:fp32,"
                        "torch:fp16,onnx:fp32); compile:fp32 / compile:bf16 put the dense part under torch.compile")
    parser.add_argument("--onnx", metavar="DIR", help="an export folder (with dense.int8.onnx for onnx:int8) of the "
                        "first config; other configs and a missing folder are exported to a temporary one")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's malloc thresholds alone (regnet-explore tunes them, see runtime.py)")
    args = parser.parse_args(argv)
    tuned = not args.default_allocator and tune_allocator()
    if args.quick:
        args.configs, args.repeats, args.points = DEFAULT_CONFIGS[0], 2, 100_000
    torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    cloud = synthetic_cloud(args.points)
    names = [get_config(n).alias for n in args.configs.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}, "
          f"allocator {'tuned (runtime.tune_allocator)' if tuned else 'default'}")
    for dev_name in devices:
        device = torch.device(dev_name)
        convs, results = [], []
        for name in names:
            convs.append(conv_reference(device, max(3, args.repeats)))
            results.append(bench_config(name, device, args.repeats, cloud))
        conv = max(convs)
        print(f"\n### device {device}: plain 3x3 conv 256->256 on 200x200 channels_last: best {conv:.1f} GFLOP/s "
              f"(measured before each config: {', '.join(f'{c:.0f}' for c in convs)})")
        for r in results:
            report(r, conv)
        variants = (args.variants or ("torch:fp32" if args.quick else default_variants(device, args.onnx))).split(",")
        if len(variants) > 1:
            onnx_dirs = {names[0]: Path(args.onnx)} if args.onnx else {}
            for name in names:
                report_variants(name, bench_variants(name, device, args.repeats, cloud, variants, onnx_dirs))
    return 0


def default_variants(device: torch.device, onnx_dir: str | None) -> str:
    if device.type == "cuda":
        return "torch:fp32,torch:fp16,onnx:fp32"
    int8 = onnx_dir is not None and (Path(onnx_dir) / "dense.int8.onnx").is_file()
    return "torch:fp32,torch:bf16,onnx:fp32" + (",onnx:int8" if int8 else "")


if __name__ == "__main__":
    sys.exit(main())
