"""Detector checkpoints: mmdet3d layout in and out, strict loading with a full report, legacy detection,
hostile files, and ImageNet RegNet weights into the backbone."""

import os
import pickle
from collections import OrderedDict

import pytest
import torch

from regnet_explore.detection.checkpoint import checkpoint_is_legacy, load_pretrained_backbone, save_checkpoint
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.checkpoint import read_checkpoint

from .helpers import KEYS


@pytest.fixture(scope="module")
def nus():
    torch.manual_seed(0)
    return PointPillars(get_config("regnet-400mf-secfpn-nus")).eval()


def mmdet3d_file(path, model, version="0.5.0", prefix=""):
    state = OrderedDict((prefix + k, v.clone()) for k, v in model.state_dict().items())
    meta = {"CLASSES": list(model.cfg.class_names)}
    if version:
        meta["mmdet3d_version"] = version
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_save_then_load_round_trip(tmp_path, nus):
    path = tmp_path / "ours.pth"
    optimizer = torch.optim.AdamW(nus.parameters(), lr=1e-3)
    save_checkpoint(nus, path, meta={"epoch": 3}, extra={"optimizer": optimizer.state_dict()})
    assert [p.name for p in tmp_path.iterdir()] == ["ours.pth"]  # no temp file left behind
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"meta", "state_dict", "optimizer"}
    assert obj["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert obj["meta"]["CLASSES"] == list(nus.cfg.class_names) and obj["meta"]["epoch"] == 3
    assert obj["meta"]["config"] == nus.cfg.name and obj["meta"]["legacy"] is False
    assert list(obj["state_dict"]) == list(nus.state_dict())  # the mmdet3d key set, pts_ prefix included
    loaded = PointPillars.from_config(nus.cfg.name, checkpoint=path, fuse=False)
    assert same_weights(loaded, nus) and loaded.legacy is False


@pytest.mark.parametrize("version,name,legacy", [
    ("0.5.0", "x.pth", True), ("0.18.1", "x.pth", True), ("1.0.0rc0", "x.pth", False), ("1.4.0", "x.pth", False),
    (None, "hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d_20200620_230334-53044f32.pth", True),
    (None, "something_20230101_101010-0123abcd.pth", False), (None, "x.pth", False),
])
def test_convention_is_read_from_meta_or_release_name(tmp_path, nus, version, name, legacy):
    path = mmdet3d_file(tmp_path / name, nus, version, prefix="module.")
    meta = read_checkpoint(path).meta
    assert checkpoint_is_legacy(meta, path) is legacy
    model = PointPillars.from_config(nus.cfg, checkpoint=path, fuse=False)
    assert model.legacy is legacy and model.pts_bbox_head.legacy is legacy
    assert same_weights(model, nus)
    forced = PointPillars.from_config(nus.cfg, checkpoint=path, legacy=not legacy)
    assert forced.pts_bbox_head.legacy is (not legacy)


def test_bare_state_dict_loads(tmp_path, nus):
    path = tmp_path / "bare.pth"
    torch.save(nus.state_dict(), path)
    assert same_weights(PointPillars.from_config(nus.cfg, checkpoint=path, fuse=False), nus)


def test_checkpoint_of_another_config_names_every_mismatch(tmp_path):
    path = tmp_path / "lyft.pth"
    save_checkpoint(PointPillars(get_config("regnet-400mf-secfpn-lyft")), path)
    with pytest.raises(RegNetExploreError) as e:
        PointPillars.from_config("regnet-400mf-secfpn-nus", checkpoint=path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    assert "pts_voxel_encoder.vfe_layers.1.linear.weight" in msg and "missing" in msg
    assert "pts_bbox_head.conv_cls.weight (checkpoint (162, 384, 1, 1) vs model (140, 384, 1, 1))" in msg
    assert "pts_bbox_head.conv_reg.weight" not in msg  # 18 x 7 == 14 x 9: same shape, loads
    assert "pts_bbox_head.conv_dir_cls.bias (checkpoint (36,) vs model (28,))" in msg


def test_unexpected_keys_are_named(tmp_path, nus):
    state = OrderedDict(nus.state_dict())
    state["pts_backbone.extra.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(RegNetExploreError, match=r"1 unexpected: pts_backbone\.extra\.weight"):
        PointPillars.from_config(nus.cfg, checkpoint=path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("kind", ["missing", "garbage", "truncated", "malicious", "not-a-dict", "directory"])
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, nus, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{kind}.pth"
    if kind == "garbage":
        path.write_bytes(b"definitely not a checkpoint" * 10)
    elif kind == "truncated":
        save_checkpoint(nus, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "malicious":
        path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    elif kind == "not-a-dict":
        torch.save([torch.zeros(1)], path)
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(RegNetExploreError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "pwned").exists()


def imagenet_regnet_file(path, arch="regnetx_400mf"):
    """What the lead's converter writes: pycls weights in mmdet's ResNet layout, classifier kept as fc."""
    net = RegNet(arch, num_classes=1000)
    torch.save({"state_dict": net.state_dict()}, path)
    return net.state_dict()


def test_imagenet_backbone_weights_load_with_a_report(tmp_path, caplog):
    path = tmp_path / "regnetx_400mf.pth"
    source = imagenet_regnet_file(path)
    reference = [line.split(" ")[0] for line in (KEYS / "mmdet_regnetx_400mf.keys").read_text().splitlines()]
    assert [k for k in source if not k.startswith("fc.")] == reference  # a layout mmdet reads
    model = PointPillars(get_config("regnet-400mf-fpn-nus"))
    before = {k: v.clone() for k, v in model.pts_backbone.state_dict().items()}
    with caplog.at_level("WARNING"):
        report = load_pretrained_backbone(model, path)
    reasons = dict(report.skipped)
    skipped = set(reasons)
    assert skipped == {"conv1.weight", "fc.weight", "fc.bias", "layer1.0.conv1.weight",
                       "layer1.0.downsample.0.weight"} | {f"bn1.{k}" for k in (
                           "weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert "stem" in reasons["conv1.weight"] and "classifier" in reasons["fc.weight"]
    assert "[32, 32, 1, 1] in the checkpoint vs [32, 64, 1, 1]" in reasons["layer1.0.conv1.weight"]
    assert report.not_loaded == ["layer1.0.conv1.weight", "layer1.0.downsample.0.weight"]
    after = model.pts_backbone.state_dict()
    for key in after:
        if key in report.loaded:
            assert torch.equal(after[key], source[key]), key
        else:
            assert torch.equal(after[key], before[key]), key  # mismatched tensors stay at their init
    assert len(report.loaded) == len(after) - 2
    assert "layer1.0.downsample.0.weight" in caplog.text


def test_imagenet_weights_of_the_wrong_kind_are_refused(tmp_path):
    path = tmp_path / "regnet.pth"
    imagenet_regnet_file(path)
    with pytest.raises(RegNetExploreError, match="need a RegNet backbone"):
        load_pretrained_backbone(PointPillars(get_config("fpn-nus")), path)
    junk = tmp_path / "junk.pth"
    torch.save({"state_dict": {"foo.weight": torch.zeros(3)}}, junk)
    with pytest.raises(RegNetExploreError, match="no tensor of this file fits"):
        load_pretrained_backbone(PointPillars(get_config("regnet-400mf-fpn-nus")), junk)
