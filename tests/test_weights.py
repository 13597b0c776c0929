"""The shipped weights: present, loadable into their configs, and as good on the synthetic val split as claimed."""

from __future__ import annotations

import pytest
import torch

from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import PointPillars
from regnet_explore.evaluation.predict import evaluate_model, predict_split, score_detections
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.weights import WEIGHTS_DIR, shipped_checkpoint

NUS = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
LYFT = "hv_pointpillars_regnet-400mf_fpn_sbn-all_2x8_2x_lyft-3d"
RANGE100 = "hv_pointpillars_regnet-400mf_fpn_sbn-all_range100_2x8_2x_lyft-3d"
SECFPN = "hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d"


@pytest.mark.parametrize("name", [NUS, RANGE100, SECFPN])
def test_shipped_weights_load_into_their_config(name):
    path = shipped_checkpoint(name)
    assert path is not None and path.parent == WEIGHTS_DIR, f"no shipped weights for {name}"
    ckpt = read_checkpoint(path)
    state, meta = ckpt.state, ckpt.meta
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert meta["config"].startswith(name) and meta["fp16"]
    model = PointPillars.from_config(name, checkpoint=path)  # strict: every key and shape
    assert next(model.parameters()).dtype == torch.float32
    assert path.stat().st_size < 16 * 2**20


def test_configs_with_the_same_network_share_weights():
    assert shipped_checkpoint("hv_pointpillars_regnet-400mf_fpn_sbn-all_fp16_2x8_2x_nus-3d") == shipped_checkpoint(NUS)
    assert shipped_checkpoint(LYFT) == shipped_checkpoint(RANGE100)  # trained on the +-100 m range
    assert shipped_checkpoint("regnet-400mf-secfpn-nus") not in (None, shipped_checkpoint(NUS))  # another neck
    PointPillars.from_config("regnet-400mf-fpn-lyft-range100", checkpoint=shipped_checkpoint(LYFT))


def on_other_frames(dets: dict[str, Detections], tokens: list[str]) -> dict[str, Detections]:
    """Each frame's boxes given to the frame half the split away (another scene of the synthetic splits): where no
    car is. A metric that credits these is not scoring where the boxes are."""
    half = len(tokens) // 2
    return {t: dets[tokens[(i + half) % len(tokens)]] for i, t in enumerate(tokens)}


@pytest.mark.slow
@pytest.mark.parametrize("name", [NUS, SECFPN])
def test_shipped_nuscenes_weights_reach_car_ap_half_on_synthetic_mini_val(name, tmp_path):
    """The issue's bar, by the devkit's DetectionEval over the full 50 m class range, for the FPN and the SECFPN
    weights (trained with the same recipe: weights README)."""
    val = open_dataset("nuscenes", ensure_default_dataset("nuscenes"), None, "mini_val")
    dets = predict_split(PointPillars.from_config(name, checkpoint=shipped_checkpoint(name)), val)
    metrics = score_detections(val, dets, tmp_path / "shipped")
    misplaced = score_detections(val, on_other_frames(dets, val.tokens), tmp_path / "misplaced")
    assert (tmp_path / "misplaced" / "metrics_summary.json").exists()  # the devkit ran
    assert metrics["class_AP"]["car"] >= 0.5
    assert metrics["mAP"] > misplaced["mAP"] + 0.1 and metrics["NDS"] > misplaced["NDS"] + 0.1


@pytest.mark.slow
def test_shipped_lyft_weights_detect_cars_at_iou_half_on_synthetic_val(tmp_path):
    """The Lyft SDK's car AP at 3D IoU 0.5 on the default set's val split (8 key frames, objects to 96 m), for the
    +-80 m configuration and its range100 twin (the same file): the issue's bar is 0.5. The shipped file measures
    0.548 / 0.545 here and 0.552 / 0.551 on the 6 held-out scenes of lyft-24x4 (weights README)."""
    val = open_dataset("lyft", ensure_default_dataset("lyft"), None, "val")
    dets = predict_split(PointPillars.from_config(LYFT, checkpoint=shipped_checkpoint(LYFT)), val)
    trained = score_detections(val, dets, tmp_path)
    misplaced = score_detections(val, on_other_frames(dets, val.tokens), tmp_path)
    assert trained["average_precisions"]["car"][0] >= 0.5 > misplaced["average_precisions"]["car"][0] + 0.15
    assert trained["threshold_mAP"][0.5] > misplaced["threshold_mAP"][0.5]
    far = PointPillars.from_config(RANGE100, checkpoint=shipped_checkpoint(RANGE100))
    assert evaluate_model(far, val, tmp_path / "range100")["average_precisions"]["car"][0] >= 0.5
