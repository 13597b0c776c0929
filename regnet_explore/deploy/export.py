"""A loaded :class:`PointPillars` -> two ONNX graphs and their manifest.

The split is the one maintainers of every PointPillars codebase advise: the parameter-free, data-dependent steps
(voxelization, scatter, box decoding, NMS) stay in code, the two networks become graphs.

- ``encoder.onnx``: voxels (P, max_points, 4) float32, num_points (P,) int32, coors (P, 4) int32 -> pillars
  (P, C); P is dynamic.
- ``dense.onnx``: bev (B, C, ny, nx) float32 -> ``cls_0 .. cls_{L-1}``, ``reg_*``, ``dir_*`` per level, as
  :meth:`AnchorHead.forward` gives them; batch, height and width are dynamic.
- ``deploy.json``: format, config name, box convention, geometry, class names, graph and output names, opset,
  versions, the checkpoint (path and SHA-256) and, once quantized, the int8 graph's settings.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from regnet_explore.detection.configs import DetectorConfig, get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_folder, write_json_atomic

MANIFEST = "deploy.json"
ENCODER, DENSE, DENSE_INT8 = "encoder.onnx", "dense.onnx", "dense.int8.onnx"
FORMAT = 1
OPSET = 18  # ScatterND with reduction=max (the pillar max) needs 18


def require(module: str) -> ModuleType:
    """Import an optional deployment dependency, or a one-line error saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RegNetExploreError(f"{module} is not installed; the ONNX backend needs the deploy extra: "
                                 f"pip install 'regnet_explore[deploy]' (onnx, onnxruntime)") from None


def session_options(threads: int) -> Any:
    """onnxruntime session options: ``threads`` intra-op threads, errors only in the log (not the
    shape-inference notes about dynamic outputs)."""
    options = require("onnxruntime").SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


class EncoderGraph(nn.Module):
    """(voxels (P, M, 4), num_points (P,), coors (P, 4)) -> pillar features (P, C): the pillar encoder alone."""

    def __init__(self, model: PointPillars):
        super().__init__()
        self.encoder = model.pts_voxel_encoder

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor) -> torch.Tensor:
        return self.encoder(voxels, num_points, coors)


class DenseGraph(nn.Module):
    """BEV canvas (B, C, ny, nx) -> (cls per level..., reg per level..., dir per level...): backbone, neck, head."""

    def __init__(self, model: PointPillars):
        super().__init__()
        self.backbone, self.neck, self.head = model.pts_backbone, model.pts_neck, model.pts_bbox_head

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.backbone(bev)  # per out_index (B, C_i, ny / s_i, nx / s_i)
        feats = self.neck(feats)  # per level (B, C, h_i, w_i)
        cls, reg, dirs = self.head(feats)
        return (*cls, *reg, *dirs)


def output_names(levels: int) -> list[str]:
    return [f"{kind}_{i}" for kind in ("cls", "reg", "dir") for i in range(levels)]


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def geometry(cfg: DetectorConfig) -> dict:
    """What the graphs were traced for and the runtime must match: grid, range, pillars, anchors, classes."""
    return {"bev_shape": list(cfg.bev_shape), "point_cloud_range": list(cfg.point_cloud_range),
            "voxel_size": list(cfg.voxel_size), "max_points": cfg.max_points,
            "in_channels": cfg.encoder.in_channels, "class_names": list(cfg.class_names),
            "anchor_sizes": [list(s) for s in cfg.anchors.sizes], "code_size": cfg.code_size}


def export_onnx(model: PointPillars, out: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                opset: int = OPSET) -> Path:
    """Write ``encoder.onnx``, ``dense.onnx`` and ``deploy.json`` of ``model`` (fp32, eval) to the folder ``out``.

    The folder appears whole or not at all (an earlier export there is replaced). ``checkpoint`` is recorded in
    the manifest (path and SHA-256) so that a deployment says which weights it holds.
    """
    onnx = require("onnx")
    cfg = model.cfg
    cpu = PointPillars(cfg, legacy=model.legacy).eval()  # a float32 CPU copy to trace: the model is left alone
    state = {k: v.float() for k, v in model.state_dict().items()}
    if model.fused:
        cpu.fuse()
    cpu.load_state_dict(state)
    cpu.set_channels_last(False)
    with torch.no_grad():
        clouds = [_example_cloud(cfg)]
        vox = cpu.voxelize(clouds)
        pillars = cpu.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors)
        bev = cpu.pts_middle_encoder(pillars, vox.coors, 1).contiguous()
        levels = len(cpu.pts_bbox_head(cpu.pts_neck(cpu.pts_backbone(bev)))[0])
    names = output_names(levels)
    with atomic_folder(out, MANIFEST) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(EncoderGraph(cpu), (vox.voxels, vox.num_points, vox.coors), tmp / ENCODER,
                          dynamo=False, opset_version=opset, input_names=["voxels", "num_points", "coors"],
                          output_names=["pillars"],
                          dynamic_axes={"voxels": {0: "P"}, "num_points": {0: "P"}, "coors": {0: "P"},
                                        "pillars": {0: "P"}})
        torch.onnx.export(DenseGraph(cpu), (bev,), tmp / DENSE, dynamo=False, opset_version=opset,
                          input_names=["bev"], output_names=names,
                          dynamic_axes={"bev": {0: "B", 2: "H", 3: "W"}, **{n: {0: "B", 2: f"h_{n[-1]}",
                                                                                3: f"w_{n[-1]}"} for n in names}})
        _inline_shared_constants(onnx, tmp / DENSE)
        for graph in (ENCODER, DENSE):
            onnx.checker.check_model(str(tmp / graph))
        manifest = {"format": FORMAT, "config": cfg.name, "legacy": model.legacy, "geometry": geometry(cfg),
                    "levels": levels, "outputs": names, "opset": opset, "torch": torch.__version__,
                    "onnx": onnx.__version__, "graphs": {"encoder": ENCODER, "dense": DENSE},
                    "checkpoint": None if checkpoint is None else os.fspath(checkpoint),
                    "checkpoint_sha256": None if checkpoint is None else sha256(checkpoint), "int8": None}
        write_json_atomic(manifest, tmp / MANIFEST)
    return Path(out)


def _inline_shared_constants(onnx: ModuleType, path: Path) -> None:
    """Equal weights (the zero biases of freshly folded BatchNorms) come out of the exporter as one initializer and
    Identity nodes; give each node its own initializer again, so that the quantizer finds every bias constant."""
    model = onnx.load(str(path))
    constants = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in constants:
            copy = onnx.TensorProto()
            copy.CopyFrom(constants[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            nodes.append(node)
    if len(nodes) < len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(path))


def _example_cloud(cfg: DetectorConfig) -> torch.Tensor:
    """A few thousand points spread over the range, some pillars full: enough for the exporter to trace."""
    g = torch.Generator().manual_seed(0)
    x0, y0, z0, x1, y1, z1 = cfg.point_cloud_range
    scatter = torch.rand(4000, 3, generator=g) * torch.tensor([x1 - x0, y1 - y0, 2.0]) + torch.tensor([x0, y0, -2.0])
    pile = torch.zeros(cfg.max_points + 5, 3)  # one pillar with more points than it keeps
    xyz = torch.cat([scatter, pile])
    return torch.cat([xyz, torch.zeros(len(xyz), cfg.point_dims - 3)], 1)


def read_manifest(folder: str | os.PathLike, config: str | DetectorConfig | None = None) -> dict:
    """The manifest of an export folder, checked: its files are there, its config exists, and (when ``config``
    is given) it is that config with the same geometry; anything else is a one-line error naming the folder."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise RegNetExploreError(f"{folder}: not an ONNX export folder (no {MANIFEST}; make one with "
                                 f"`regnet-explore export-onnx`)")
    try:
        manifest = json.loads(path.read_text())
        name = manifest["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise RegNetExploreError(f"{path}: not a valid manifest ({type(e).__name__}: {e})") from None
    if manifest.get("format") != FORMAT:
        raise RegNetExploreError(f"{path}: manifest format {manifest.get('format')!r}, this version reads {FORMAT}")
    cfg = get_config(name)
    if config is not None:
        wanted = get_config(config) if isinstance(config, str) else config
        if wanted.name != cfg.name:
            raise RegNetExploreError(f"{folder}: exported from {cfg.name}, not {wanted.name}")
    if manifest.get("geometry") != geometry(cfg):
        raise RegNetExploreError(f"{folder}: exported for another geometry of {cfg.name} than this version's "
                                 f"(export it again)")
    for graph in manifest["graphs"].values():
        if not (folder / graph).is_file():
            raise RegNetExploreError(f"{folder}: {graph} is missing")
    return manifest
