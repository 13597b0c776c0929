"""The one checkpoint reader: every kind of file the package meets is told apart, and the RegNet inside each comes out
as the same tensors in mmdet's keys."""

from __future__ import annotations

import pytest
import torch

from regnet_explore.detection.checkpoint import export_weights, save_checkpoint
from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.checkpoint import parse_checkpoint, read_checkpoint
from regnet_explore.regnet.convert import backbone_state, convert_checkpoint, to_pycls_checkpoint
from regnet_explore.regnet.zoo import zoo_match, zoo_matches


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file of each kind: a detector (its training checkpoint and its export), a pycls ImageNet RegNet and its
    conversion, and a file of other tensors."""
    root = tmp_path_factory.mktemp("kinds")
    torch.manual_seed(0)
    detector = PointPillars(get_config("regnet-400mf-fpn-nus"))
    save_checkpoint(detector, root / "detector.pth", extra={"optimizer": {"state": {}, "param_groups": []}})
    export_weights(root / "detector.pth", root / "export.pth", half=False)
    imagenet = RegNet("RegNetX-200MF", num_classes=10)
    torch.save(to_pycls_checkpoint(imagenet), root / "pycls.pyth")
    convert_checkpoint(root / "pycls.pyth", root / "converted.pth")
    torch.save({"foo.weight": torch.zeros(2)}, root / "other.pth")
    return root, detector, imagenet


@pytest.mark.parametrize(("name", "kind"), [("detector.pth", "detector"), ("export.pth", "detector"),
                                            ("pycls.pyth", "pycls"), ("converted.pth", "backbone"),
                                            ("other.pth", "other")])
def test_each_kind_is_told_apart(files, name, kind):
    root, _, _ = files
    assert read_checkpoint(root / name).kind == kind


def test_the_regnet_inside_every_kind_is_the_same(files):
    root, detector, imagenet = files
    for names, net in ((("detector.pth", "export.pth"), detector.pts_backbone),
                       (("pycls.pyth", "converted.pth"), imagenet)):
        expected = net.state_dict()
        for name in names:
            got = backbone_state(read_checkpoint(root / name))
            assert set(got) == set(expected), name
            assert all(torch.equal(got[k], expected[k]) for k in expected), name
    with pytest.raises(RegNetExploreError, match="no RegNet backbone in it"):
        backbone_state(read_checkpoint(root / "other.pth"))


def test_meta_and_extra_entries_are_kept_apart_from_the_tensors(files):
    root, _, _ = files
    ckpt = read_checkpoint(root / "detector.pth")
    assert ckpt.meta["config"] == get_config("regnet-400mf-fpn-nus").name
    assert set(ckpt.extra) == {"optimizer"} and all(k.startswith("pts_") for k in ckpt.state)
    assert read_checkpoint(root / "export.pth").extra == {}


def test_module_prefixes_are_cut_and_non_tensors_refused():
    ckpt = parse_checkpoint({"state_dict": {"module.pts_x.weight": torch.zeros(1)}}, "f.pth")
    assert list(ckpt.state) == ["pts_x.weight"] and ckpt.kind == "detector"
    with pytest.raises(RegNetExploreError, match="f.pth: not a state_dict: entries"):
        parse_checkpoint({"state_dict": {"a": 1}}, "f.pth")
    with pytest.raises(RegNetExploreError, match="no 'ema_state'"):
        parse_checkpoint({"state_dict": {"a": torch.zeros(1)}}, "f.pth", use_ema=True)


def test_one_zoo_matcher():
    assert zoo_matches([32, 64, 160, 384], [1, 2, 7, 12]) == ["RegNetX-400MF"]
    assert zoo_matches([224, 448, 896, 2240], [2, 5, 11, 1]) == ["RegNetX-12GF", "RegNetY-12GF"]
    assert zoo_match(RegNet("RegNetY-12GF").stages) == "RegNetY-12GF"
    assert zoo_match(RegNet("RegNetX-400MF", strides=(1, 2, 2, 2)).stages) == "RegNetX-400MF"
