"""``regnet-explore demo``: the main job, end to end on the embedded synthetic data, with nothing downloaded.

RegNet core (zoo report, pycls -> mmdet conversion, pitfall) -> synthetic nuScenes set -> PointPillars
RegNetX-400MF-FPN -> inference on mini_val -> 3D HTML scene, BEV and open3d PNGs -> the official nuScenes metric.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from regnet_explore.data.dataset import DetectionData, open_dataset
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.nuscenes import evaluate_nuscenes
from regnet_explore.evaluation.predict import predict_split
from regnet_explore.io import save_checkpoint_atomic
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import convert_checkpoint, to_pycls_checkpoint
from regnet_explore.regnet.pitfall import diagnose, paper_rounded
from regnet_explore.regnet.report import zoo_report
from regnet_explore.regnet.zoo import zoo_params
from regnet_explore.settings import COUNT, check_device
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.viz.bev import bev_figure
from regnet_explore.viz.common import save_png
from regnet_explore.viz.open3d_view import Open3DUnavailable, open3d_status, render_png
from regnet_explore.viz.scene3d import save_html, scene_figure
from regnet_explore.weights import shipped_checkpoint

DETECTOR = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"


class _Steps:
    """Numbered progress lines with the elapsed time."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, title: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {title}  (t = {time.perf_counter() - self.t0:.1f} s)", flush=True)


def regnet_core(out_dir: Path, arch: str, step: _Steps) -> Path:
    step("the pycls RegNet zoo: stages and complexity from (d, w0, wa, wm, g), checked against pycls's figures")
    print(zoo_report())
    step(f"a pycls-format {arch} checkpoint (seeded random weights: nothing is downloaded) -> mmdet keys")
    torch.manual_seed(0)
    pycls_file = out_dir / f"{arch}_pycls.pyth"
    save_checkpoint_atomic(to_pycls_checkpoint(RegNet(arch, num_classes=1000)), pycls_file)
    mmdet_file = out_dir / f"{arch.lower().replace('-', '_')}_mmdet.pth"
    print(convert_checkpoint(pycls_file, mmdet_file, verify=True).describe())
    d = diagnose(paper_rounded(zoo_params(arch)), arch)
    print(f"quantization pitfall: the figure's rounded wa/wm build depths {list(d.candidate.depths)} instead of "
          f"{list(d.reference.depths)}; {len(d.key_diffs)} backbone keys would not load "
          "(regnet-explore arch --help, notebook 02)")
    return mmdet_file


def run_demo(out_dir: Path, arch: str = "RegNetX-400MF", data_root: str | None = None,
             device: str = "cpu", max_samples: int | None = None) -> dict[str, Path]:
    """The whole pipeline; returns the files it wrote."""
    check_device(device)
    if data_root is not None and not Path(data_root).is_dir():
        raise RegNetExploreError(f"dataroot {data_root}: no such directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    step = _Steps(6)
    files = {"converted backbone": regnet_core(out_dir, arch, step)}
    val = _mini_val(step, data_root, max_samples)
    detections = _detect(step, val, device)
    files.update(_draw_busiest(step, val, detections, out_dir))
    step("the official nuScenes metric (nuscenes-devkit DetectionEval, detection_cvpr_2019) on mini_val")
    if max_samples:
        print("skipped: evaluation needs every sample of the split")
    else:
        files["metrics"] = _score(val, detections, out_dir)
    return files


def _mini_val(step: _Steps, data_root: str | None, max_samples: int | None) -> DetectionData:
    step("synthetic nuScenes v1.0-mini (made on first use, in the devkit's exact format)")
    root = Path(data_root) if data_root else ensure_default_dataset("nuscenes")
    val = open_dataset("nuscenes", root, None, "mini_val")
    if max_samples:
        val.tokens = val.tokens[:max_samples]
    print(f"{root}: {len(val)} mini_val key frames")
    return val


def _detect(step: _Steps, val: DetectionData, device: str) -> dict[str, Detections]:
    step(f"PointPillars {DETECTOR} on {device}")
    weights = shipped_checkpoint(DETECTOR)
    model = PointPillars.from_config(DETECTOR, checkpoint=weights, device=device)
    if weights is None:
        print("no trained weights are shipped for this config: the boxes below come from an untrained head")
    else:
        print(f"weights: {weights} (trained by regnet_explore on the synthetic data)")
    cx = model.complexity()
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; dense part {cx['flops'] / 1e9:.1f} GFLOPs "
          f"on the {model.cfg.bev_shape[0]}x{model.cfg.bev_shape[1]} BEV grid")
    t0 = time.perf_counter()
    detections = predict_split(model, val, progress=True)
    per_frame = (time.perf_counter() - t0) / max(len(val), 1)
    print(f"inference: {per_frame:.2f} s per frame, {sum(len(d) for d in detections.values())} boxes")
    return detections


def _draw_busiest(step: _Steps, val: DetectionData, detections: dict[str, Detections], out_dir: Path
                  ) -> dict[str, Path]:
    step("3D scene (HTML), bird's-eye view and open3d renders of the busiest sample")
    token = max(val.tokens, key=lambda t: len(val.sample(t, with_points=False).gt_boxes))
    sample, pred = val.sample(token), detections[token]
    gt = Detections.from_arrays(sample.gt_boxes, None, sample.gt_labels, val.class_names)
    files = {"3D scene": out_dir / "scene.html", "BEV": out_dir / "bev.png"}
    title = f"{'synthetic ' if val.synthetic else ''}nuScenes mini_val {token[:8]}"  # synthetic data says so
    save_html(scene_figure(sample.points, gt, pred, score_thr=0.3, title=title), files["3D scene"])
    save_png(bev_figure(sample.points, gt, pred, score_thr=0.3, title=title), files["BEV"])
    ok, message = open3d_status()
    if not ok:
        print(f"open3d render skipped: {message}")
        return files
    try:
        render_png(out_dir / "open3d.png", sample.points, gt, pred, score_thr=0.3)
        files["open3d render"] = out_dir / "open3d.png"
    except Open3DUnavailable as e:
        print(f"open3d render skipped: {e}")
    return files


def _score(val: DetectionData, detections: dict[str, Detections], out_dir: Path) -> Path:
    metrics = evaluate_nuscenes(val, detections, out_dir / "eval")
    print(f"mAP {metrics['mAP']:.4f}  NDS {metrics['NDS']:.4f}  "
          + "  ".join(f"{k} {metrics[k]:.3f}" for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE")))
    print("per class AP: " + ", ".join(f"{c} {ap:.3f}" for c, ap in metrics["class_AP"].items()))
    return out_dir / "eval" / "metrics_summary.json"


def _cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    files = run_demo(Path(args.out), args.arch, args.data, args.device, args.max_samples)
    print(f"\ndone in {time.perf_counter() - t0:.1f} s; files:")
    for label, path in files.items():
        print(f"  {label:20s} {path}")
    print("explore further: regnet-explore lab (JupyterLab on the notebooks)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded synthetic data, end to end")
    p.add_argument("--out", default="demo_output", metavar="OUT_DIR", help="output folder (default: demo_output)")
    p.add_argument("--arch", default="RegNetX-400MF", help="zoo model for the conversion step")
    p.add_argument("--data", metavar="DIR",
                   help="nuScenes dataroot (default: the synthetic mini set, made on first use)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-samples", type=COUNT.parse, help="infer on the first N samples only (no evaluation)")
    p.set_defaults(func=_cmd_demo)

