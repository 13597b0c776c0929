"""PointPillars with its two networks run by onnxruntime, behind the same ``predict`` as :class:`PointPillars`.

Points -> voxelize (torch) -> ``encoder.onnx`` -> scatter (torch) -> ``dense.onnx`` (or ``dense.int8.onnx``) ->
decode + rotated NMS (torch). The torch steps are those of a :class:`PointPillars` of the exported config (they
hold no weights), so the boxes equal the torch model's up to the graphs' float rounding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from regnet_explore.deploy.export import DENSE, DENSE_INT8, ENCODER, read_manifest, require, session_options, sha256
from regnet_explore.detection.configs import DetectorConfig
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import HeadOutputs, PointPillars, PointsLike, as_clouds
from regnet_explore.detection.protocol import Detector
from regnet_explore.detection.voxelize import Voxels
from regnet_explore.errors import RegNetExploreError

OnnxPrecision = Literal["fp32", "int8"]
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def providers(device: torch.device) -> list[str]:
    """onnxruntime execution providers for ``device``: CUDA (then CPU) on a GPU, CPU otherwise."""
    ort = require("onnxruntime")
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RegNetExploreError("onnxruntime has no CUDA execution provider here (install onnxruntime-gpu "
                                 "instead of onnxruntime), or run the ONNX backend with --device cpu")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxPointPillars:
    """The graphs of an export folder on ``device`` (``precision`` fp32, or int8 once ``dense.int8.onnx`` exists).

    ``threads`` sets onnxruntime's intra-op threads for the dense graph (default: torch's, so that both backends
    use the same cores); the encoder graph runs on one (see ``__init__``).
    ``config`` (a name or config) makes a folder exported from another config an error.
    """

    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu",
                 precision: OnnxPrecision = "fp32", threads: int | None = None,
                 config: str | DetectorConfig | None = None):
        ort = require("onnxruntime")
        self.folder, self.device, self.precision = Path(folder), torch.device(device), precision
        self.manifest = read_manifest(folder, config)
        if precision not in ("fp32", "int8"):
            hint = "; bf16 runs on the torch backend (--backend torch)" if precision == "bf16" else ""
            raise RegNetExploreError(f"precision {precision!r}: the ONNX backend runs fp32 and int8{hint}")
        dense = DENSE_INT8 if precision == "int8" else DENSE
        if not (self.folder / dense).is_file():
            raise RegNetExploreError(f"{folder}: no {dense}; make it with `regnet-explore export-onnx ... --int8`")
        # the parameter-free steps (voxelize, scatter, anchors, decode) of the exported config
        self.steps = PointPillars.from_config(self.manifest["config"], device=self.device,
                                              legacy=self.manifest["legacy"], fuse=False)
        self.cfg = self.steps.cfg
        chosen = providers(self.device)
        try:
            # one thread for the encoder: onnxruntime's CPU ScatterND(reduction=max), the pillar max, splits the
            # points among threads without atomics, so a pillar whose points two threads share can lose a point's
            # max now and then (onnxruntime issue #18048); one thread is exact, and ~25 ms slower on 260k points
            self.encoder = ort.InferenceSession(str(self.folder / ENCODER), session_options(1), providers=chosen)
            self.dense_graph = ort.InferenceSession(str(self.folder / dense),
                                                    session_options(threads or torch.get_num_threads()),
                                                    providers=chosen)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise RegNetExploreError(f"{folder}: onnxruntime cannot load the graphs "
                                     f"({str(e).splitlines()[0]})") from None
        self._input_types = {i.name: NUMPY_TYPES[i.type] for i in self.encoder.get_inputs()}
        self.levels = self.manifest["levels"]

    # --- the data path, in order ----------------------------------------------------------------------------

    def forward(self, clouds: list[torch.Tensor]) -> HeadOutputs:
        """Head outputs for a batch of clouds, as :meth:`PointPillars.forward` gives them."""
        vox = self.voxelize(clouds)  # voxels (P, max_points, 4), num_points (P,), coors (P, 4)
        pillars = self.encode(vox)  # (P, C)
        bev = self.scatter(pillars, vox.coors, len(clouds))  # (B, C, ny, nx)
        return self.dense(bev)

    __call__ = forward

    def voxelize(self, clouds: list[torch.Tensor]) -> Voxels:
        return self.steps.voxelize(clouds)

    def encode(self, vox: Voxels) -> torch.Tensor:
        feed = {"voxels": vox.voxels, "num_points": vox.num_points, "coors": vox.coors}
        feed = {k: v.detach().cpu().numpy().astype(self._input_types[k], copy=False) for k, v in feed.items()}
        return torch.from_numpy(self.encoder.run(None, feed)[0]).to(self.device)

    def scatter(self, pillars: torch.Tensor, coors: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self.steps.pts_middle_encoder(pillars, coors, batch_size)

    def dense(self, bev: torch.Tensor) -> HeadOutputs:
        outs = self.dense_graph.run(None, {"bev": np.ascontiguousarray(bev.detach().cpu().numpy())})
        # channels_last, as the torch dense part leaves them: the decode's per-anchor view is then free (2x faster)
        outs = [torch.from_numpy(o).to(self.device).contiguous(memory_format=torch.channels_last) for o in outs]
        n = self.levels
        return outs[:n], outs[n:2 * n], outs[2 * n:]

    @torch.no_grad()
    def predict(self, points: PointsLike, score_thr: float | None = None) -> Detections | list[Detections]:
        """Boxes for one cloud or a list of clouds, exactly as :meth:`PointPillars.predict`."""
        single, clouds = as_clouds(points, self.cfg.point_dims, self.device)
        if not clouds:
            return []
        dets = self.decode(self.forward(clouds), score_thr)
        return dets[0] if single else dets

    def decode(self, outs: HeadOutputs, score_thr: float | None = None) -> list[Detections]:
        return self.steps.decode(outs, score_thr)

    def timed_stages(self) -> dict[str, tuple[object, str]]:
        """The stages of the data path for :func:`detection.timing.stage_timer` (the dense part is one graph)."""
        return {"voxelize": (self, "voxelize"), "encoder": (self, "encode"), "scatter": (self, "scatter"),
                "dense": (self, "dense"), "decode": (self, "decode")}

    @property
    def legacy(self) -> bool:
        return self.steps.legacy


def compile_dense(model: PointPillars) -> PointPillars:
    """``model``'s backbone, neck and head under ``torch.compile`` (inductor, weights frozen as constants), in place.

    The first frame compiles (again for another precision or grid); what it gains over eager in each precision:
    ``benchmarks/inference.py`` (docs/deployment.md). Needs a C++ compiler on CPU. For inference only: the compiled
    modules' state_dict keys change."""
    if not model.fused:
        raise RegNetExploreError(f"{model.cfg.name}: compile the inference form (PointPillars.fuse()) only")
    for part in ("pts_backbone", "pts_neck", "pts_bbox_head"):
        setattr(model, part, torch.compile(getattr(model, part), dynamic=False, options={"freezing": True}))
    return model


def load_detector(config: str | DetectorConfig, checkpoint: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", backend: Literal["torch", "onnx"] = "torch",
                  precision: str = "auto", onnx_dir: str | os.PathLike | None = None,
                  legacy: bool | None = None, compile: bool = False) -> Detector:
    """A detector with ``predict`` on either backend: torch (``precision`` auto, fp32, bf16, fp16; ``compile``:
    the dense part under torch.compile) or the ONNX graphs of ``onnx_dir`` (fp32, int8; ``auto`` is fp32). A
    ``checkpoint`` given with the ONNX backend must be the one the folder was exported from."""
    if backend == "torch":
        if onnx_dir is not None:
            raise RegNetExploreError("--onnx is for the ONNX backend (--backend onnx)")
        model = PointPillars.from_config(config, checkpoint=checkpoint, device=device, legacy=legacy)
        model.set_precision(precision)
        return compile_dense(model) if compile else model
    if compile:
        raise RegNetExploreError("--compile is for the torch backend")
    if backend != "onnx":
        raise RegNetExploreError(f"backend {backend!r}: torch or onnx")
    if onnx_dir is None:
        raise RegNetExploreError("the ONNX backend needs --onnx DIR (made by `regnet-explore export-onnx`)")
    model = OnnxPointPillars(onnx_dir, device, "fp32" if precision == "auto" else precision, config=config)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise RegNetExploreError(f"{checkpoint}: no such file")
    if checkpoint is not None and sha256(checkpoint) != model.manifest["checkpoint_sha256"]:
        raise RegNetExploreError(f"{onnx_dir}: exported from {model.manifest['checkpoint'] or 'random weights'}, "
                                 f"not from {checkpoint} (export it again, or leave out --checkpoint)")
    return model
