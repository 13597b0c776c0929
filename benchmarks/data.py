"""Data benchmarks: index build time and peak memory against the number of key frames, multi-sweep loading
throughput, and the time to make the default synthetic sets.

Each index build runs in a fresh process so that its peak RSS is its own; the floor is the peak RSS of a process
that only imports the same modules. Table-only synthetic sets (no point files) stand in for big datasets.

    python benchmarks/data.py [--sizes 50,500,5000] [--loads 20] [--skip-default]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from regnet_explore.data.dataset import LyftData, NuScenesData
from regnet_explore.synthetic import synthesize

# Peak RSS from VmHWM: it starts afresh at exec, whereas ru_maxrss keeps the forking parent's high-water mark.
_CHILD = r"""
import json, re, sys, time
from pathlib import Path
from regnet_explore.data.index import build_index
tables, out = sys.argv[1:3]
t0 = time.perf_counter()
if tables != "-":
    build_index(Path(tables), Path(out), "benchmark")
hwm = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": int(hwm) / 1024}))
"""


def _child(tables: str, out: str) -> dict:
    run = subprocess.run([sys.executable, "-c", _CHILD, tables, out], check=True, capture_output=True, text=True)
    return json.loads(run.stdout)


def _layout(keyframes: int) -> tuple[int, int]:
    """Scenes x key frames per scene for a total (real scenes have about 40 key frames)."""
    per_scene = min(40, max(10, keyframes // 10))
    return max(1, keyframes // per_scene), per_scene


def index_scaling(sizes: list[int], work: Path) -> list[dict]:
    floor = _child("-", "-")["peak_rss_mb"]
    rows = []
    for size in sizes:
        scenes, per_scene = _layout(size)
        t0 = time.perf_counter()
        root = synthesize("nuscenes", work / f"nus{size}", scenes, per_scene, cast_lidar=False)
        made = time.perf_counter() - t0
        version = "v1.0-mini" if scenes <= 10 else "v1.0-trainval"
        tables = root / version
        size_mb = sum(p.stat().st_size for p in tables.iterdir()) / 2**20
        result = _child(str(tables), str(work / f"index{size}.sqlite"))
        rows.append({"key_frames": scenes * per_scene, "tables_mb": round(size_mb, 1),
                     "table_generation_s": round(made, 1), "index_build_s": round(result["seconds"], 2),
                     "peak_rss_mb": round(result["peak_rss_mb"], 1),
                     "peak_above_import_floor_mb": round(result["peak_rss_mb"] - floor, 1)})
        print(rows[-1], flush=True)
    return rows


def load_throughput(fmt: str, root: Path, loads: int) -> dict:
    data = NuScenesData(root, "v1.0-mini") if fmt == "nuscenes" else LyftData(root, "v1.01-train")
    data.sample(0)  # index and page cache warm
    indices = [i % len(data) for i in range(loads)]
    t0 = time.perf_counter()
    points = sum(len(data.sample(i).points) for i in indices)
    seconds = time.perf_counter() - t0
    return {"format": fmt, "frames_per_s": round(loads / seconds, 1),
            "mean_points_per_frame": round(points / loads), "sweeps": data.sweeps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500,5000", help="key-frame counts for the index benchmark")
    parser.add_argument("--loads", type=int, default=20, help="samples loaded per throughput measurement")
    parser.add_argument("--skip-default", action="store_true",
                        help="skip making the default synthetic sets (and the loading benchmark on them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regnet-explore-bench-") as tmp:
        work = Path(tmp)
        report = {"index": index_scaling([int(s) for s in args.sizes.split(",")], work)}
        report["default_generation_s"], report["loading"] = {}, []
        for fmt in () if args.skip_default else ("nuscenes", "lyft"):
            t0 = time.perf_counter()
            root = synthesize(fmt, work / f"{fmt}-default")
            report["default_generation_s"][fmt] = round(time.perf_counter() - t0, 1)
            report["loading"].append(load_throughput(fmt, root, args.loads))
            print(report["loading"][-1], flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
