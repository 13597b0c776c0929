"""Conversion speed and peak memory for a large (default RegNetX-12GF) pycls checkpoint.

Each operation runs in a fresh process so its peak RSS is its own; the baseline in the same run is a plain
``torch.load`` + ``torch.save`` copy of the same file (the least any converter must do), and the memory floor is
the RSS of a process that only imports torch and the package.

    python benchmarks/convert.py [--arch RegNetX-12GF] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import to_pycls_checkpoint

_CHILD = r"""
import json, sys, time
import torch
from regnet_explore.regnet.convert import convert_checkpoint
op, src, dst = sys.argv[1:4]
t0 = time.perf_counter()
if op == "copy":
    torch.save(torch.load(src, weights_only=True), dst)
elif op == "convert":
    convert_checkpoint(src, dst)
elif op == "convert+verify":
    convert_checkpoint(src, dst, verify=True)
seconds = time.perf_counter() - t0
# VmHWM: this process's own peak RSS (ru_maxrss can carry the parent's high-water mark over fork + exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "max_rss": hwm * 1024}))
"""


def run_child(op: str, src: Path, dst: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, op, str(src), str(dst)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="RegNetX-12GF")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "pycls.pyth", Path(tmp) / "out.pth"
        torch.save(to_pycls_checkpoint(RegNet(args.arch, num_classes=1000)), src)
        size = src.stat().st_size
        floor = min(run_child("import-only", src, dst)["max_rss"] for _ in range(args.repeats))
        print(f"{args.arch}: checkpoint {size / 2**20:.1f} MiB; import-only process RSS {floor / 2**20:.0f} MiB; "
              f"torch threads {torch.get_num_threads()}")
        print(f"{'operation':16s} {'time s (best)':>13s} {'x copy':>7s} {'peak RSS - floor':>17s} {'x file':>7s}")
        base_time = None
        for op in ("copy", "convert", "convert+verify"):
            runs = [run_child(op, src, dst) for _ in range(args.repeats)]
            t = min(r["seconds"] for r in runs)
            mem = min(r["max_rss"] for r in runs) - floor
            base_time = base_time or t
            print(f"{op:16s} {t:13.3f} {t / base_time:7.2f} {mem / 2**20:13.1f} MiB {mem / size:7.2f}")


if __name__ == "__main__":
    main()
