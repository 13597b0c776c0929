"""The quantization pitfall: rounded figure values against the exact zoo networks and checkpoints."""

from __future__ import annotations

import torch

from regnet_explore.cli import main
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import convert_checkpoint, to_pycls_checkpoint
from regnet_explore.regnet.design import RegNetParams, generate_stages
from regnet_explore.regnet.pitfall import diagnose, paper_rounded, pitfall_table
from regnet_explore.regnet.zoo import zoo_matches, zoo_params

from .helpers import cli_error


def test_rounded_400mf_moves_a_block_between_stages():
    d = diagnose(paper_rounded(zoo_params("RegNetX-400MF")), "regnetx_400mf")
    assert d.candidate.widths == (32, 64, 160, 384) and d.candidate.depths == (1, 2, 6, 13)
    assert [s.index for s in d.stage_diffs if s.differs] == [2, 3]
    assert not d.same_network
    assert any(k.startswith("unexpected  layer3.6.conv1.weight") for k in d.key_diffs)
    assert any(k.startswith("missing     layer4.12.conv1.weight") for k in d.key_diffs)
    wa_only = RegNetParams(depth=22, w0=24, wa=24, wm=2.54, group_w=16)
    assert generate_stages(wa_only).depths == (1, 3, 6, 12)


def test_pitfall_table_matches_reference_facts():
    rows = {r.name: r for r in pitfall_table()}
    assert rows["RegNetX-1.6GF"].rounded.widths == (72, 168, 384, 840)
    assert rows["RegNetX-1.6GF"].rounded.depths == (2, 4, 9, 3)
    assert rows["RegNetX-200MF"].rounded.widths == (24, 64, 152, 376)
    assert rows["RegNetX-600MF"].rounded.widths == (48, 96, 240, 504)
    assert rows["RegNetX-3.2GF"].rounded.depths == (2, 6, 13, 4)
    assert rows["RegNetX-800MF"].rounded.depths == (1, 3, 8, 4)
    assert rows["RegNetX-6.4GF"].rounded.widths == (168, 392, 784)
    assert rows["RegNetX-12GF"].rounded.widths == (224, 448, 1008)
    assert rows["RegNetX-600MF"].rounded.depths == (1, 2, 6, 7)
    unchanged = {name for name, r in rows.items() if not r.changed}
    assert unchanged == {"RegNetX-8.0GF", "RegNetX-16GF", "RegNetX-32GF"}


def test_stage_count_collapse_is_reported():
    d = diagnose(paper_rounded(zoo_params("RegNetX-6.4GF")), "RegNetX-6.4GF")
    assert d.stage_count_changed and d.stage_diffs[3].candidate is None
    assert "stage count changes 4 -> 3" in d.describe()


def test_exact_params_are_the_same_network():
    d = diagnose(zoo_params("RegNetX-1.6GF"), "regnetx_1.6gf")
    assert d.same_network and not d.key_diffs


def test_diagnose_against_checkpoints(tmp_path):
    pycls_file = tmp_path / "x.pyth"
    torch.save(to_pycls_checkpoint(RegNet("RegNetX-400MF", num_classes=1000)), pycls_file)
    convert_checkpoint(pycls_file, tmp_path / "x.pth")
    for ref in (pycls_file, tmp_path / "x.pth"):
        d = diagnose(paper_rounded(zoo_params("RegNetX-400MF")), ref)
        assert "RegNetX-400MF" in d.reference_label and not d.same_network
        assert diagnose(zoo_params("RegNetX-400MF"), ref).same_network


def test_inverse_lookup():
    assert zoo_matches([32, 64, 160, 384], [1, 2, 7, 12]) == ["RegNetX-400MF"]
    assert zoo_matches([224, 448, 896, 2240], [2, 5, 11, 1]) == ["RegNetX-12GF", "RegNetY-12GF"]
    assert zoo_matches([224, 448, 896, 2240], [2, 5, 11, 1], se=True) == ["RegNetY-12GF"]
    assert zoo_matches([32, 64, 160, 400], [1, 2, 7, 12]) == []


def test_cli_arch(tmp_path, capsys):
    assert main(["arch", "--depth", "22", "--w0", "24", "--wa", "24.5", "--wm", "2.5", "--group-w", "16",
                 "--compare", "regnetx_400mf"]) == 0
    out = capsys.readouterr().out
    assert "<- differs" in out and "layer4.12" in out
    assert main(["arch", "--widths", "32,64,160,400", "--depths", "1,2,7,12"]) == 0
    assert "no zoo model" in capsys.readouterr().out
    assert main(["arch", "RegNetX-400MF", "--rounding", "half_up"]) == 0
    assert "  4      400" in capsys.readouterr().out
    assert "need all of" in cli_error(capsys, ["arch", "--depth", "22", "--w0", "24"])
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert out.count("= zoo") == 24 and "DIFFERS" not in out
