"""What only a CUDA machine can check (marker ``cuda``; skipped elsewhere; ``benchmarks/gpu_check.sh`` runs them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.detections import match
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.voxelize import spconv_runs_on, voxelize
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.weights import shipped_checkpoint

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
NAME = "regnet-400mf-fpn-nus"


def _points(n: int = 3) -> list[np.ndarray]:
    data = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), split="mini_val")
    return [data.sample(t).network_points() for t in data.tokens[:n]]


def test_voxelizers_agree_on_cuda():
    """The torch voxelizer on CUDA makes the CPU's pillars exactly, and so does spconv where it runs on CUDA."""
    cloud = torch.from_numpy(_points(1)[0])
    cfg = PointPillars.from_config(NAME, fuse=False).cfg
    args = (cfg.voxel_size, cfg.point_cloud_range, cfg.max_points, cfg.max_voxels[1])
    ref = voxelize([cloud], *args, backend="torch")
    assert ref.voxels.device.type == "cpu" and len(ref.num_points) > 1000 and int(ref.num_points.max()) > 1
    backends = ["torch"] + (["spconv"] if spconv_runs_on(torch.device("cuda")) else [])
    for backend in backends:
        got = voxelize([cloud.cuda()], *args, backend=backend)
        assert got.voxels.is_cuda, backend
        for name in ("coors", "num_points", "voxels"):
            torch.testing.assert_close(getattr(got, name).cpu(), getattr(ref, name),
                                       msg=lambda m, name=name, backend=backend: f"{backend} {name}: {m}")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_boxes_match_cpu(precision):
    checkpoint = shipped_checkpoint(NAME)
    cpu = PointPillars.from_config(NAME, checkpoint=checkpoint)
    gpu = PointPillars.from_config(NAME, checkpoint=checkpoint, device="cuda").set_precision(precision)
    rtol = 1e-3 if precision == "fp32" else 0.05
    for points in _points():
        ref, dets = cpu.predict(points).above(0.2), gpu.predict(points).above(0.2).cpu()
        assert abs(len(ref) - len(dets)) <= (0 if precision == "fp32" else 1)
        assert match(ref, dets, rtol=rtol).mean() >= 0.9


def test_onnx_on_the_cuda_provider(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (onnxruntime-gpu is not installed)")
    from regnet_explore.deploy.export import export_onnx
    from regnet_explore.deploy.runtime import OnnxPointPillars

    cpu = PointPillars.from_config(NAME, checkpoint=shipped_checkpoint(NAME))
    onnx = OnnxPointPillars(export_onnx(cpu, tmp_path / "onnx"), device="cuda")
    for points in _points():
        ref, dets = cpu.predict(points).above(0.2), onnx.predict(points).above(0.2).cpu()
        assert match(ref, dets).mean() >= 0.99


def test_amp_training_steps(tmp_path):
    from regnet_explore.train.engine import TrainConfig, train

    result = train(TrainConfig(detector=NAME, epochs=1, max_iters_per_epoch=4, batch_size=2, device="cuda",
                               amp="fp16", work_dir=str(tmp_path), evaluate=False, warmup_iters=2))
    losses = [r["loss"] for r in result.history if r.get("mode") == "train" and "loss" in r]
    assert result.checkpoint.is_file() and losses and np.isfinite(losses).all()
