"""ONNX export and runtime, lower precision, and the prepared GPU check (regnet_explore.deploy)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.data.dataset import open_dataset
from regnet_explore.data.points import key_frame_points
from regnet_explore.deploy import export as export_module
from regnet_explore.deploy.export import DENSE, MANIFEST, export_onnx, read_manifest, require
from regnet_explore.deploy.quantize import conv_layers, format_sensitivity, quantize_export
from regnet_explore.deploy.runtime import OnnxPointPillars, load_detector
from regnet_explore.detection.detections import Detections, match
from regnet_explore.detection.detector import PointPillars, as_clouds
from regnet_explore.detection.pillar_encoder import real_slots
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import flat_metrics, predict_split, score_detections
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.weights import shipped_checkpoint

from .helpers import REAL_NUS_POINTS, REPO, cli_error

pytest.importorskip("onnxruntime")
NAME = "regnet-400mf-fpn-nus"
REAL_FRAME = REAL_NUS_POINTS


@pytest.fixture(scope="module")
def shipped() -> PointPillars:
    return PointPillars.from_config(NAME, checkpoint=shipped_checkpoint(NAME))


@pytest.fixture(scope="module")
def exported(shipped, tmp_path_factory):
    return export_onnx(shipped, tmp_path_factory.mktemp("onnx") / "nus", checkpoint=shipped_checkpoint(NAME))


@pytest.fixture(scope="module")
def frames(real_frame) -> list[tuple[str, np.ndarray]]:
    """The real nuScenes frame (one sweep) and every frame of the synthetic mini_val split (10 sweeps)."""
    data = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), split="mini_val")
    out = [(t, data.sample(t).network_points()) for t in data.tokens]
    out.insert(0, ("real", key_frame_points(real_frame.points, str(real_frame.path))))
    return out


@pytest.fixture(scope="module")
def fp32_boxes(shipped, frames) -> dict[str, Detections]:
    """The shipped weights' fp32 boxes of every frame: what the other backends and precisions are held to."""
    return {token: shipped.predict(points) for token, points in frames}


def test_onnx_encoder_is_exact_and_repeatable(shipped, exported, frames):
    """The encoder graph gives torch's pillar features to float rounding, the same bits on every run, whatever
    ran in between. It runs on one thread: onnxruntime's multi-threaded ScatterND(reduction=max) races on a
    pillar whose points two threads share (here: one pillar of one synthetic frame off by 0.015, run to run)."""
    onnx = OnnxPointPillars(exported, config=NAME, threads=2)
    assert onnx.encoder.get_session_options().intra_op_num_threads == 1
    for token, points in frames:
        _, clouds = as_clouds(points, 4, torch.device("cpu"))
        with torch.no_grad():
            runs = [onnx.encode(onnx.voxelize(clouds))]
            shipped(clouds)  # torch's threads between two runs, as in a mixed workload
            runs += [onnx.encode(onnx.voxelize(clouds)) for _ in range(2)]
            vox = onnx.voxelize(clouds)
            want = shipped.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors)
        assert all(torch.equal(r, runs[0]) for r in runs[1:]), token
        torch.testing.assert_close(runs[0], want, atol=1e-5, rtol=1e-5, msg=lambda m, t=token: f"{t}: {m}")


def test_onnx_runtime_gives_the_torch_boxes(shipped, exported, frames, fp32_boxes):
    """Head outputs equal to float rounding on every frame (1e-4); the same number of boxes; every box scoring 0.2
    or more matched within 1e-3; over all boxes (down to the 0.05 threshold) ONNX agrees with torch at least as
    well as torch agrees with itself once its BatchNorm is folded: the low-score tail is a cluster of near-tied
    boxes whose NMS outcome any float rounding reorders."""
    onnx = OnnxPointPillars(exported, config=NAME)
    unfused = PointPillars.from_config(NAME, checkpoint=shipped_checkpoint(NAME), fuse=False)
    all_onnx, all_self = [], []
    for token, points in frames:
        _, clouds = as_clouds(points, 4, torch.device("cpu"))
        with torch.no_grad():
            want, got = shipped(clouds), onnx(clouds)
        for a, b in zip(sum(want, []), sum(got, []), strict=True):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=lambda m, t=token: f"{t}: {m}")
        ref, dets, own = fp32_boxes[token], onnx.predict(points), unfused.predict(points)
        assert len(dets) == len(ref), token
        strong = match(ref.above(0.2), dets.above(0.2))
        assert strong.mean() >= 0.99, (token, strong.mean())
        all_onnx.append(match(ref, dets))
        all_self.append(match(ref, own))
    onnx_rate, self_rate = np.concatenate(all_onnx).mean(), np.concatenate(all_self).mean()
    assert onnx_rate >= self_rate - 0.02, (onnx_rate, self_rate)


def test_manifest_and_folder_checks(exported, tmp_path):
    manifest = read_manifest(exported, NAME)
    assert manifest["config"] == "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
    assert manifest["outputs"] == [f"{k}_{i}" for k in ("cls", "reg", "dir") for i in range(3)]
    assert manifest["checkpoint"] == str(shipped_checkpoint(NAME)) and len(manifest["checkpoint_sha256"]) == 64
    with pytest.raises(RegNetExploreError, match="exported from .*nus-3d, not .*secfpn"):
        read_manifest(exported, "secfpn-nus")
    with pytest.raises(RegNetExploreError, match="not an ONNX export folder"):
        read_manifest(tmp_path)
    with pytest.raises(RegNetExploreError, match="no dense.int8.onnx"):
        OnnxPointPillars(exported, precision="int8")
    with pytest.raises(RegNetExploreError, match="bf16 runs on the torch backend"):
        OnnxPointPillars(exported, precision="bf16")
    with pytest.raises(RegNetExploreError, match="int8 runs on the ONNX backend"):
        load_detector(NAME, precision="int8")
    with pytest.raises(RegNetExploreError, match="needs --onnx DIR"):
        load_detector(NAME, backend="onnx")


def test_cli_infer_onnx_and_its_errors(exported, tmp_path, capsys):
    out = tmp_path / "preds.json"
    args = ["infer", NAME, "--points", str(REAL_FRAME), "--backend", "onnx", "--onnx", str(exported)]
    assert main([*args, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["backend"] == "onnx" and len(payload["scores"]) > 0
    capsys.readouterr()
    cases = [([*args[:1], "secfpn-nus", *args[2:]], "exported from .*, not .*secfpn"),
             ([*args, "--checkpoint", str(REPO / "pyproject.toml")], "exported from .*, not from .*pyproject.toml"),
             ([*args, "--precision", "int8"], "no dense.int8.onnx"),
             (["infer", NAME, "--points", str(REAL_FRAME), "--precision", "int8"], "int8 runs on the ONNX backend"),
             (["infer", NAME, "--points", str(REAL_FRAME), "--backend", "onnx", "--onnx", str(tmp_path)],
              "not an ONNX export folder")]
    for argv, message in cases:
        err = cli_error(capsys, argv)
        assert err.startswith("regnet-explore infer: error:") and re.search(message, err), (message, err)


def test_export_is_whole_or_nothing(shipped, exported, tmp_path, monkeypatch, capsys):
    # a folder of the user's is never overwritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["export-onnx", NAME, "--out", str(mine)]) == 2
    assert "without deploy.json" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep"
    # an export that fails half-way leaves the earlier export as it was and no temporary folder
    target = tmp_path / "again"
    assert main(["export-onnx", NAME, "--out", str(target)]) == 0  # random weights
    assert read_manifest(target, NAME)["checkpoint"] is None
    before = (target / DENSE).read_bytes()
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        export_onnx(shipped, target)
    assert (target / DENSE).read_bytes() == before and json.loads((target / MANIFEST).read_text())["checkpoint"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]


def test_without_onnxruntime_it_says_what_to_install(exported, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RegNetExploreError, match=r"pip install 'regnet_explore\[deploy\]'"):
        require("onnxruntime")
    err = cli_error(capsys, ["infer", NAME, "--points", str(REAL_FRAME), "--backend", "onnx", "--onnx", str(exported)])
    assert "onnxruntime is not installed" in err
    # the torch backend keeps working
    assert isinstance(load_detector(NAME), PointPillars)
    assert export_module.require("json") is json


def test_bf16_keeps_the_strong_boxes(frames, fp32_boxes):
    """bf16 autocast of the dense part moves scores by about 1e-3: the confident boxes stay (the metric is checked
    on the whole split by benchmarks/precision_accuracy.py)."""
    bf16 = PointPillars.from_config(NAME, checkpoint=shipped_checkpoint(NAME)).set_precision("bf16")
    for token, points in frames[:3]:
        ref, dets = fp32_boxes[token].above(0.3), bf16.predict(points).above(0.3)
        assert abs(len(ref) - len(dets)) <= 1, token
        # every confident fp32 box has a bf16 box of its class within 0.25 m whose score is within 0.03
        dist = torch.cdist(ref.boxes[:, :2], dets.boxes[:, :2])
        same = (ref.labels[:, None] == dets.labels[None]) & ((ref.scores[:, None] - dets.scores[None]).abs() < 0.03)
        found = (torch.where(same, dist, torch.inf).amin(1) < 0.25).float().mean()
        assert found >= 0.9, (token, found)
    with pytest.raises(RegNetExploreError, match="precision 'fp64'"):
        bf16.set_precision("fp64")


def test_gpu_check_script_parses_and_skips_without_cuda(tmp_path):
    script = REPO / "benchmarks" / "gpu_check.sh"
    py = sys.executable

    def run(*args):
        return subprocess.run(["bash", str(script), "--python", py, *args], capture_output=True, text=True,
                              timeout=120)

    dry = run("--dry-run")
    assert dry.returncode == 0 and [line.split(":")[0] for line in dry.stdout.splitlines()] == [
        "tests", "inference", "train-amp", "latency"]
    assert "-m cuda" in dry.stdout and "--device cuda" in dry.stdout and "--amp fp16" in dry.stdout
    bad = run("--budget", "soon")
    assert bad.returncode == 2 and "not a whole number" in bad.stderr
    assert run("--frobnicate").returncode == 2
    if not torch.cuda.is_available():
        skipped = run("--out", str(tmp_path / "gpu"))
        assert skipped.returncode == 0 and "no CUDA device here" in skipped.stdout
        assert not (tmp_path / "gpu").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_fastest_cpu_configuration_keeps_the_metric(fp32_boxes, tmp_path):
    """compile:bf16 (the fastest configuration in benchmarks/inference.py) against fp32 on the synthetic mini_val
    split (8 frames) through the devkit: mAP within 0.01, car AP within 0.02."""
    data = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), split="mini_val")
    fast = load_detector(NAME, shipped_checkpoint(NAME), precision="bf16", compile=True)
    ref = flat_metrics(score_detections(data, {t: fp32_boxes[t] for t in data.tokens}, tmp_path / "fp32"))
    got = flat_metrics(score_detections(data, predict_split(fast, data), tmp_path / "bf16"))
    assert abs(got["mAP"] - ref["mAP"]) <= 0.01 and abs(got["AP_car"] - ref["AP_car"]) <= 0.02, (ref, got)


def test_int8_graph_with_chosen_layers_kept_fp32(shipped, exported, frames, fp32_boxes, tmp_path):
    """The int8 pipeline end to end on a small scale: calibration, the per-layer pass over a handful of layers, the
    greedy choice (nothing kept under a bound the all-int8 graph meets; every candidate kept, most sensitive first,
    under a bound no int8 graph meets), the recorded error being the written graph's, the manifest entry, and the
    int8 runtime's boxes."""
    import shutil as sh

    from regnet_explore.deploy.export import DENSE_INT8
    from regnet_explore.deploy.quantize import bev_canvases, output_errors

    folder = tmp_path / "int8"
    sh.copytree(exported, folder)
    layers = conv_layers(folder / DENSE)
    loose = quantize_export(folder, shipped, calibration_frames=2, eval_frames=1, max_error=1e6, layers=layers[:1])
    assert loose["keep_fp32"] == [] and 0 < max(loose["error"].values()) <= 1e6
    assert loose["error"] == pytest.approx(loose["all_int8_error"], rel=1e-6)  # the final graph is the all-int8 one
    # a zero bound: int8 convs remain whatever 3 of them go back to fp32, so every candidate is kept
    entry = quantize_export(folder, shipped, calibration_frames=2, eval_frames=1, max_error=0.0, layers=layers[:3])
    assert [r["layer"] for r in entry["sensitivity"]] == layers[:3]
    by_sensitivity = sorted(entry["sensitivity"], key=lambda r: r["error"], reverse=True)
    assert entry["keep_fp32"] == [r["layer"] for r in by_sensitivity] and max(entry["error"].values()) > 0
    # the recorded error is the written graph's: against float32 on the frame after the 2 calibration frames
    evals = bev_canvases(shipped, 1, start=2)
    fp32 = require("onnxruntime").InferenceSession(str(folder / DENSE), providers=["CPUExecutionProvider"])
    manifest = read_manifest(folder)
    errors = output_errors([fp32.run(None, {"bev": c}) for c in evals], folder / DENSE_INT8, evals, manifest)
    assert errors == pytest.approx(entry["error"], rel=1e-4)
    assert manifest["int8"]["keep_fp32"] == entry["keep_fp32"]
    assert "kept fp32" in format_sensitivity(entry)
    int8 = OnnxPointPillars(folder, precision="int8", config=NAME)
    token, points = frames[1]
    assert len(int8.predict(points)) == len(fp32_boxes[token])
    with pytest.raises(RegNetExploreError, match="no Conv node named nope"):
        quantize_export(folder, shipped, calibration_frames=1, eval_frames=1, keep_fp32=["nope"])


def test_export_path_of_the_pillar_slots_equals_the_fast_path():
    counts = torch.randint(1, 21, (500,), generator=torch.Generator().manual_seed(0))
    fast, export = real_slots(counts, 20, exportable=False), real_slots(counts, 20, exportable=True)
    assert all(torch.equal(a, b) for a, b in zip(fast, export, strict=True))
    assert len(fast[0]) == int(counts.sum())
