"""Memory and speed of ``regnet-explore test`` against the number of frames: it must stay flat (detections stream
to disk; only the final submission grows with the split).

Runs ``regnet-explore test`` in a subprocess on the first N key frames of a synthetic nuScenes split for each N
(default 100, then 1000), samples the resident memory of the whole process tree (the main process plus its
DataLoader workers) every 0.1 s, and prints per run: peak RSS of the tree and of the main process, frames/s, the
submission's size, and the ratio of each figure to the first (smallest) run measured in the same invocation.

    python benchmarks/split_memory.py [--frames 100,1000] [--scenes 640 --keyframes 4 --split train]
                                     [--workers 2] [--batch-size 1] [--config regnet-400mf-fpn-nus]

The synthetic set is generated on first use (640 x 4 key frames: about 6 minutes, 12 GB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from regnet_explore.synthetic import ensure_synthetic
from regnet_explore.weights import shipped_checkpoint


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(bytes resident in the process and its descendants, in the process alone)."""
    try:
        own = proc.memory_info().rss
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    total = own
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, own


def run(config: str, root: Path, split: str, frames: int, workers: int, batch: int, out: Path) -> dict:
    checkpoint = shipped_checkpoint(config)
    cmd = [sys.executable, "-m", "regnet_explore.cli", "test", config, "--data", str(root), "--split", split,
           "--limit", str(frames), "--out", str(out), "--workers", str(workers), "--batch-size", str(batch)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watched = psutil.Process(proc.pid)
    peak_tree = peak_main = 0
    while proc.poll() is None:
        tree, main = tree_rss(watched)
        peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    stdout = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"regnet-explore test failed ({proc.returncode}): {stdout[-500:]}")
    line = next(x for x in stdout.splitlines() if "key frames" in x)
    fps = float(line.split(" frames/s")[0].rsplit(", ", 1)[-1])
    submission = next(out.glob("results_nusc.json"), None) or next(out.glob("submission.csv"))
    return {"frames": frames, "peak_tree_mb": peak_tree / 2**20, "peak_main_mb": peak_main / 2**20, "fps": fps,
            "wall_s": wall, "submission_mb": submission.stat().st_size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="100,1000")
    parser.add_argument("--config", default="regnet-400mf-fpn-nus")
    parser.add_argument("--scenes", type=int, default=640)
    parser.add_argument("--keyframes", type=int, default=4)
    parser.add_argument("--split", default="train")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    root = ensure_synthetic("nuscenes", args.scenes, args.keyframes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.frames.split(",")):
            rows.append(run(args.config, root, args.split, n, args.workers, args.batch_size, Path(tmp) / str(n)))
            r, base = rows[-1], rows[0]
            print(f"{r['frames']:>6} frames: peak RSS {r['peak_tree_mb']:.0f} MB with workers "
                  f"(x{r['peak_tree_mb'] / base['peak_tree_mb']:.2f} of {base['frames']}), main process "
                  f"{r['peak_main_mb']:.0f} MB (x{r['peak_main_mb'] / base['peak_main_mb']:.2f}); "
                  f"{r['fps']:.2f} frames/s (x{r['fps'] / base['fps']:.2f}); submission {r['submission_mb']:.1f} MB; "
                  f"wall {r['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
