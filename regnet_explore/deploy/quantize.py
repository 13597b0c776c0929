"""int8 for the dense graph: onnxruntime static quantization, calibrated on synthetic training frames, with the
convolutions that int8 hurts most kept in float32.

Weights are int8 per output channel (symmetric), activations uint8 per tensor with min/max ranges from the
calibration canvases, in QDQ form (onnxruntime fuses QuantizeLinear -> Conv -> DequantizeLinear into its VNNI
int8 kernels). The sensitivity pass quantizes one convolution at a time, the rest float32, and measures how far
the head's outputs move on frames that were not used for calibration; the greedy choice then returns the most
sensitive convolutions to float32 until the whole int8 graph's output error is under a bound.

Naive int8 is known to wreck PointPillars (published TensorRT results lose most pedestrian AP), so the result is
scored on the metric, not assumed: ``benchmarks/precision_accuracy.py``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from regnet_explore.data.dataset import open_dataset, training_split
from regnet_explore.deploy.export import DENSE, DENSE_INT8, MANIFEST, read_manifest, require, session_options
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import atomic_write, write_json_atomic
from regnet_explore.synthetic import ensure_default_dataset

OUTPUT_GROUPS = ("cls", "reg", "dir")


@dataclass(frozen=True)
class LayerSensitivity:
    """How far the head outputs move (relative L2 error, mean over frames) with only ``layer`` in int8."""

    layer: str
    cls: float
    reg: float
    dir: float

    @property
    def error(self) -> float:
        return max(self.cls, self.reg, self.dir)


def bev_canvases(model: PointPillars, frames: int, start: int = 0, dataroot: str | os.PathLike | None = None,
                 ) -> list[np.ndarray]:
    """BEV canvases (1, C, ny, nx) float32 of key frames ``start .. start + frames`` of the config's training split
    (the synthetic set by default), made by ``model``'s own voxelization, encoder and scatter in float32."""
    cfg = model.cfg
    root = dataroot if dataroot is not None else ensure_default_dataset(cfg.dataset)
    data = open_dataset(cfg.dataset, root)
    data = open_dataset(cfg.dataset, root, data.version, split=training_split(cfg.dataset, data.version))
    canvases = []
    with torch.no_grad():
        for token in data.tokens[start:start + frames]:
            cloud = torch.from_numpy(data.sample(token).network_points()).to(model.device)
            vox = model.voxelize([cloud])
            pillars = model.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors)
            bev = model.pts_middle_encoder(pillars, vox.coors, 1)
            canvases.append(np.ascontiguousarray(bev.float().cpu().numpy()))
    return canvases


def conv_layers(graph: str | os.PathLike) -> list[str]:
    """Names of the Conv nodes of an ONNX graph, in graph order."""
    onnx = require("onnx")
    return [n.name for n in onnx.load(str(graph), load_external_data=False).graph.node if n.op_type == "Conv"]


def _reader(canvases: Sequence[np.ndarray]):
    quantization = require("onnxruntime.quantization")

    class Canvases(quantization.CalibrationDataReader):
        def __init__(self):
            self.items = iter(canvases)

        def get_next(self) -> dict | None:
            canvas = next(self.items, None)
            return None if canvas is None else {"bev": canvas}

    return Canvases()


class _NoPreprocessAdvice(logging.Filter):
    """onnxruntime's quantizer advises shape pre-processing on every call (the graph already has its shapes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_graph(source: Path, target: Path, canvases: Sequence[np.ndarray], cache: Path,
                   only: Sequence[str] | None = None, keep_fp32: Sequence[str] = ()) -> None:
    """``source`` (a float32 dense graph) -> ``target`` in QDQ int8: every quantizable node, or ``only`` those,
    except ``keep_fp32``. Calibration ranges are computed once into ``cache`` and reused."""
    quantization = require("onnxruntime.quantization")
    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        _quantize(quantization, source, target, canvases, cache, only, keep_fp32)
    finally:
        logging.getLogger().removeFilter(quiet)


def _quantize(quantization, source: Path, target: Path, canvases: Sequence[np.ndarray], cache: Path,
              only: Sequence[str] | None, keep_fp32: Sequence[str]) -> None:
    quantization.quantize_static(
        str(source), str(target), _reader(canvases), quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8, nodes_to_quantize=list(only) if only else None,
        nodes_to_exclude=list(keep_fp32), op_types_to_quantize=["Conv"], calibration_cache_path=str(cache),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def _session(graph: Path, threads: int | None = None):
    ort = require("onnxruntime")
    options = session_options(threads or torch.get_num_threads())
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def output_errors(reference: Sequence[Sequence[np.ndarray]], graph: Path, canvases: Sequence[np.ndarray],
                  manifest: dict, score_thr: float = 0.05) -> dict[str, float]:
    """Relative L2 error per output group of ``graph`` against the float32 ``reference`` outputs, mean over
    ``canvases``, on the anchors that can become boxes (a reference score of at least ``score_thr``): ``cls`` of
    the class scores (sigmoid), ``reg`` of the box deltas, ``dir`` of the direction logits. Background anchors
    are left out: their deltas were never trained and move freely without changing a box."""
    session = _session(graph)
    levels, classes = manifest["levels"], len(manifest["geometry"]["class_names"])
    code_size = manifest["geometry"]["code_size"]
    errors = {g: [] for g in OUTPUT_GROUPS}
    for ref, canvas in zip(reference, canvases, strict=True):
        outs = session.run(None, {"bev": canvas})
        picked = {g: ([], []) for g in OUTPUT_GROUPS}
        for level in range(levels):
            for group, width, offset in (("cls", classes, 0), ("reg", code_size, levels), ("dir", 2, 2 * levels)):
                r, q = (_per_anchor(o[offset + level], width) for o in (ref, outs))
                if group == "cls":
                    r, q = _sigmoid(r), _sigmoid(q)
                    keep = r.max(1) >= score_thr
                picked[group][0].append(r[keep].ravel())
                picked[group][1].append(q[keep].ravel())
        for group, (r, q) in picked.items():
            r, q = np.concatenate(r), np.concatenate(q)
            errors[group].append(float(np.linalg.norm(q - r) / max(np.linalg.norm(r), 1e-12)))
    return {g: float(np.mean(v)) for g, v in errors.items()}


def _per_anchor(x: np.ndarray, width: int) -> np.ndarray:
    """(B, A * width, H, W) -> (B * A * H * W, width), anchors in the head's channel order."""
    b, c, h, w = x.shape
    return x.reshape(b, c // width, width, h, w).transpose(0, 1, 3, 4, 2).reshape(-1, width)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def quantize_export(folder: str | os.PathLike, model: PointPillars, calibration_frames: int = 16,
                    eval_frames: int = 4, max_error: float = 0.05, keep_fp32: Sequence[str] | None = None,
                    dataroot: str | os.PathLike | None = None, layers: Sequence[str] | None = None) -> dict:
    """Add ``dense.int8.onnx`` to an export folder of ``model`` and record the choice in its manifest.

    Calibration uses the first ``calibration_frames`` key frames of the training split, the sensitivity pass the
    ``eval_frames`` after them. ``keep_fp32=None`` runs the pass and keeps the most sensitive convolutions in
    float32 until the int8 graph's output error (the largest of the cls/reg/dir relative errors) is at most
    ``max_error``; a list (possibly empty) skips the pass and keeps exactly those. ``layers`` limits the pass to
    those Conv nodes (default: all). Returns the manifest's ``int8`` entry (settings, the sensitivity table, the
    layers kept, the final output errors).
    """
    folder = Path(folder)
    manifest = read_manifest(folder, model.cfg)
    convs = conv_layers(folder / DENSE)
    layers = convs if layers is None else list(layers)
    unknown = sorted(set(keep_fp32 or ()) - set(convs))
    if unknown:  # before any calibration work
        raise RegNetExploreError(f"{folder / DENSE}: no Conv node named {', '.join(unknown)}")
    start = time.perf_counter()
    calib = bev_canvases(model, calibration_frames, 0, dataroot)
    evals = bev_canvases(model, eval_frames, calibration_frames, dataroot)
    fp32 = _session(folder / DENSE)
    reference = [fp32.run(None, {"bev": c}) for c in evals]
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        cache, trial = tmp / "calibration", tmp / "trial.onnx"
        quantize_graph(folder / DENSE, trial, calib, cache)  # every layer int8; fills the calibration cache
        all_int8 = output_errors(reference, trial, evals, manifest)
        table: list[LayerSensitivity] = []
        if keep_fp32 is None:
            for layer in tqdm(layers, desc="int8 sensitivity", leave=False):
                quantize_graph(folder / DENSE, trial, calib, cache, only=[layer])
                table.append(LayerSensitivity(layer, **output_errors(reference, trial, evals, manifest)))
            kept, errors = [], all_int8
            for row in sorted(table, key=lambda r: r.error, reverse=True):
                if max(errors.values()) <= max_error:
                    break
                kept.append(row.layer)
                quantize_graph(folder / DENSE, trial, calib, cache, keep_fp32=kept)
                errors = output_errors(reference, trial, evals, manifest)
        else:
            kept = list(keep_fp32)
        quantize_graph(folder / DENSE, trial, calib, cache, keep_fp32=kept)
        errors = output_errors(reference, trial, evals, manifest)
        with atomic_write(folder / DENSE_INT8) as target:
            os.replace(trial, target)
    entry = {"graph": DENSE_INT8, "calibration_frames": calibration_frames, "eval_frames": eval_frames,
             "max_error": max_error, "scheme": "QDQ; weights int8 per channel, activations uint8 per tensor, min/max",
             "all_int8_error": all_int8, "keep_fp32": kept, "error": errors,
             "sensitivity": [asdict(r) | {"error": r.error} for r in table], "seconds": time.perf_counter() - start}
    manifest["int8"] = entry
    manifest["graphs"]["dense_int8"] = DENSE_INT8
    write_json_atomic(manifest, folder / MANIFEST)
    return entry


def format_sensitivity(entry: dict, top: int = 12) -> str:
    """The sensitivity table (most sensitive first) and the choice, as the CLI prints it."""
    rows = sorted(entry["sensitivity"], key=lambda r: r["error"], reverse=True)
    lines = [f"{'layer (int8 alone, the rest fp32)':60s} {'cls':>8s} {'reg':>8s} {'dir':>8s}  kept fp32"]
    for r in rows[:top]:
        lines.append(f"{r['layer']:60s} {r['cls']:8.4f} {r['reg']:8.4f} {r['dir']:8.4f}  "
                     f"{'yes' if r['layer'] in entry['keep_fp32'] else ''}")
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more layers, each under {rows[top]['error']:.4f}")
    a, e = entry["all_int8_error"], entry["error"]
    lines.append(f"every conv int8: output error cls {a['cls']:.4f} reg {a['reg']:.4f} dir {a['dir']:.4f}")
    lines.append(f"chosen ({len(entry['keep_fp32'])} conv kept fp32): cls {e['cls']:.4f} reg {e['reg']:.4f} "
                 f"dir {e['dir']:.4f} (bound {entry['max_error']})")
    return "\n".join(lines)
