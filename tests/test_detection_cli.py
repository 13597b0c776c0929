"""`regnet-explore infer` and `regnet-explore configs`: output, JSON, and one-line errors with exit code 2."""

import json

import numpy as np
import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.data.points import key_frame_points
from regnet_explore.detection.checkpoint import save_checkpoint
from regnet_explore.detection.configs import CONFIGS, get_config
from regnet_explore.detection.detector import PointPillars

from .helpers import REAL_NUS_POINTS, cli_error

FRAME = REAL_NUS_POINTS


def test_configs_table_lists_every_config(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for cfg in CONFIGS.values():
        assert cfg.name in out and cfg.alias in out
    assert "6,754,088" in out and "10,486,552" in out and "RegNetX-1.6GF" in out and "SECOND" in out


def test_key_frame_points_keep_xyz_and_zero_the_time_lag():
    raw = np.arange(15, dtype=np.float32).reshape(3, 5)
    pts = key_frame_points(raw, "f.bin")
    assert pts.shape == (3, 4) and pts.dtype == np.float32
    assert np.array_equal(pts[:, :3], raw[:, :3]) and not pts[:, 3].any()


@pytest.fixture(scope="module")
def confident_checkpoint(tmp_path_factory):
    """A nuScenes 400MF-SECFPN checkpoint whose class bias makes every score ~0.5 (boxes guaranteed)."""
    torch.manual_seed(0)
    model = PointPillars(get_config("regnet-400mf-secfpn-nus"))
    torch.nn.init.constant_(model.pts_bbox_head.conv_cls.bias, 0.0)
    path = tmp_path_factory.mktemp("ckpt") / "secfpn.pth"
    save_checkpoint(model, path)
    return path


def test_infer_on_a_real_nuscenes_frame_writes_json(tmp_path, capsys, confident_checkpoint):
    out = tmp_path / "preds.json"
    rc = main(["infer", "regnet-400mf-secfpn-nus", "--checkpoint", str(confident_checkpoint), "--points", str(FRAME),
               "--out", str(out), "--score-thr", "0.3"])
    assert rc == 0
    preds = json.loads(out.read_text())
    assert preds["config"] == "hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d"
    assert preds["num_points"] == 34688 and preds["legacy"] is False
    assert 0 < len(preds["boxes"]) <= 500 and all(len(b) == 9 for b in preds["boxes"])
    assert min(preds["scores"]) > 0.3 and set(preds["names"]) <= set(get_config("secfpn-nus").class_names)
    summary = capsys.readouterr().out
    assert f"{len(preds['boxes'])} boxes from 34688 points" in summary and str(out) in summary
    assert [p.name for p in tmp_path.iterdir()] == ["preds.json"]


def test_unknown_config_is_one_error(capsys):
    err = cli_error(capsys, ["infer", "pointpillars-9000", "--points", str(FRAME)])
    assert "unknown detector config 'pointpillars-9000'" in err and "regnet-400mf-fpn-nus" in err


def test_points_file_of_the_wrong_size_is_one_error(tmp_path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(np.zeros(7, dtype=np.float32).tobytes())
    err = cli_error(capsys, ["infer", "fpn-nus", "--points", str(bad)])
    assert str(bad) in err and "--load-dim" in err
    err = cli_error(capsys, ["infer", "fpn-nus", "--points", str(tmp_path / "none.bin")])
    assert "no such point file" in err
    err = cli_error(capsys, ["infer", "fpn-nus", "--points", str(FRAME), "--load-dim", "2"])
    assert "argument --load-dim: '2' is not a whole number >= 3" in err


def test_checkpoint_of_another_config_is_one_error_naming_the_keys(capsys, confident_checkpoint):
    err = cli_error(capsys, ["infer", "regnet-400mf-fpn-nus", "--checkpoint", str(confident_checkpoint),
                            "--points", str(FRAME)])
    assert str(confident_checkpoint) in err
    assert "pts_neck.lateral_convs.0.conv.weight" in err and "pts_neck.deblocks.0.0.weight" in err
    assert "pts_bbox_head.conv_cls.weight (checkpoint (140, 384, 1, 1) vs model (80, 256, 1, 1))" in err


def test_garbage_checkpoint_and_bad_device_are_one_error(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    err = cli_error(capsys, ["infer", "fpn-nus", "--checkpoint", str(junk), "--points", str(FRAME)])
    assert str(junk) in err and "not a PyTorch checkpoint" in err
    if not torch.cuda.is_available():
        err = cli_error(capsys, ["infer", "fpn-nus", "--points", str(FRAME), "--device", "cuda"])
        assert "CUDA is not available" in err
