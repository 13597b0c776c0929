"""pycls -> mmdet conversion, tested against the real pycls package, and the bad inputs a user can give."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import (
    convert_checkpoint,
    infer_arch,
    load_pretrained,
    mmdet_to_pycls_key,
    pycls_to_mmdet_key,
    to_pycls_checkpoint,
)

from .helpers import build_pycls, read_keys

pycls_config = pytest.importorskip("pycls.core.config")


def pycls_stage_outputs(model, x):
    outs = []
    x = model.stem(x)
    for s in range(1, 5):
        x = getattr(model, f"s{s}")(x)
        outs.append(x)
    return outs, model.head(x)


@pytest.mark.parametrize("name", ["RegNetX-400MF", "RegNetX-1.6GF", "RegNetY-400MF"])
def test_real_pycls_model_converts_loads_strictly_and_matches(tmp_path, name):
    pycls_model, ckpt = build_pycls(name)
    src, dst = tmp_path / f"{name}_dds_8gpu.pyth", tmp_path / "converted.pth"
    torch.save(ckpt, src)
    assert main(["convert", str(src), str(dst), "--verify"]) == 0
    state = torch.load(dst, weights_only=True)["state_dict"]
    ours = RegNet(name, num_classes=1000)
    ours.load_state_dict(state, strict=True)
    ours.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_stages, ref_logits = pycls_stage_outputs(pycls_model, x)
        our_stages = ours(x)
        our_logits = ours.classify(x)
    for ref, out in zip(ref_stages, our_stages, strict=True):
        assert ref.shape == out.shape
        assert (ref - out).abs().max().item() < 1e-5
    assert (ref_logits - our_logits).abs().max().item() < 1e-5
    assert infer_arch(state).zoo_name == name


def test_converted_keys_equal_reference_lists(tmp_path):
    _, ckpt = build_pycls("RegNetX-400MF")
    assert [(k, tuple(v.shape)) for k, v in ckpt["model_state"].items()] == read_keys("pycls_RegNetX-400MF.keys")
    src, dst = tmp_path / "x.pyth", tmp_path / "x.pth"
    torch.save(ckpt, src)
    convert_checkpoint(src, dst, drop_fc=True)
    state = torch.load(dst, weights_only=True)["state_dict"]
    assert [(k, tuple(v.shape)) for k, v in state.items()] == read_keys("mmdet_regnetx_400mf.keys")
    convert_checkpoint(src, dst)  # fc kept, as regnet2mmdet.py does
    assert list(torch.load(dst, weights_only=True)["state_dict"])[-2:] == ["fc.weight", "fc.bias"]


def test_key_mapping_round_trip():
    for key, _ in read_keys("pycls_RegNetX-400MF.keys"):
        assert mmdet_to_pycls_key(pycls_to_mmdet_key(key)) == key
    assert pycls_to_mmdet_key("s2.b1.proj.weight") == "layer2.0.downsample.0.weight"
    assert pycls_to_mmdet_key("s4.b3.f.se.f_ex.2.bias") == "layer4.2.se.conv2.bias"


def test_ema_and_bare_state_dicts(tmp_path):
    model = RegNet("RegNetX-200MF", num_classes=10)
    ckpt = to_pycls_checkpoint(model)
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt["model_state"].items()}
    torch.save({**ckpt, "ema_state": ema}, tmp_path / "both.pyth")
    torch.save(ckpt["model_state"], tmp_path / "bare.pyth")
    convert_checkpoint(tmp_path / "both.pyth", tmp_path / "ema.pth", use_ema=True)
    convert_checkpoint(tmp_path / "bare.pyth", tmp_path / "bare.pth", verify=True)
    ema_state = torch.load(tmp_path / "ema.pth", weights_only=True)["state_dict"]
    assert torch.equal(ema_state["conv1.weight"], model.conv1.weight + 1)
    bare = torch.load(tmp_path / "bare.pth", weights_only=True)["state_dict"]
    assert torch.equal(bare["fc.weight"], model.fc.weight)


def test_load_pretrained_into_pointpillars_backbone(tmp_path):
    src = tmp_path / "x.pyth"
    torch.save(to_pycls_checkpoint(RegNet("regnetx_400mf", num_classes=1000)), src)
    convert_checkpoint(src, tmp_path / "x.pth")
    bb = RegNet("regnetx_400mf", stem=False, stem_channels=64, strides=(1, 2, 2, 2), out_indices=(1, 2, 3))
    report = load_pretrained(bb, tmp_path / "x.pth")
    skipped = dict(report.skipped)
    assert set(skipped) == {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                            "bn1.num_batches_tracked", "fc.weight", "fc.bias", "layer1.0.conv1.weight",
                            "layer1.0.downsample.0.weight"}
    assert "[32, 32, 1, 1] in the checkpoint vs [32, 64, 1, 1]" in skipped["layer1.0.conv1.weight"]
    assert report.not_loaded == ["layer1.0.conv1.weight", "layer1.0.downsample.0.weight"]
    assert len(report.loaded) == 426 - 6 - 2


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_inputs(tmp_path):
    good = tmp_path / "good.pyth"
    torch.save(to_pycls_checkpoint(RegNet("RegNetX-200MF", num_classes=1000)), good)
    trunc = tmp_path / "truncated.pyth"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint\n")
    other = tmp_path / "resnet.pth"
    torch.save({"model_state": {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(1)}},
               other)
    marker = tmp_path / "pwned"
    evil_pickle = tmp_path / "evil.pkl"
    evil_pickle.write_bytes(pickle.dumps({"model_state": _Evil(marker)}))
    evil_zip = tmp_path / "evil.pth"
    torch.save({"model_state": _Evil(marker)}, evil_zip)
    return good, marker, {
        "truncated": ([str(trunc)], "truncated"),
        "text": ([str(text)], "not a PyTorch checkpoint"),
        "other network": ([str(other)], "not a pycls RegNet checkpoint"),
        "pickle with code": ([str(evil_pickle)], "refused to load"),
        "zip with code": ([str(evil_zip)], "refused to load"),
        "unknown arch": ([str(good), "--arch", "regnetx_500mf"], "unknown RegNet arch"),
        "wrong arch": ([str(good), "--arch", "regnetx_400mf"],
                       "do not match RegNetX-400MF (the checkpoint is RegNetX-200MF)"),
    }


def test_bad_inputs_one_line_exit_2_no_output(tmp_path, capsys):
    good, marker, cases = _bad_inputs(tmp_path)
    for label, (args, message) in cases.items():
        out = tmp_path / f"out-{label.replace(' ', '_')}.pth"
        code = main(["convert", args[0], str(out), *args[1:]])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, label
        assert message in err[-1] and (args[-1] if label == "unknown arch" else args[0]) in err[-1], (label, err)
        assert err[-1].startswith("regnet-explore convert: error:")
        assert not out.exists(), label
        assert not list(tmp_path.glob(".out-*")), "temporary file left behind"
        if label != "wrong arch":
            assert len(err) == 1, (label, err)
    assert not marker.exists(), "the pickle's code ran"


def test_wrong_arch_lists_every_mismatching_key(tmp_path, capsys):
    src = tmp_path / "y.pyth"
    torch.save(to_pycls_checkpoint(RegNet("RegNetY-400MF", num_classes=1000)), src)
    assert main(["convert", str(src), str(tmp_path / "o.pth"), "--arch", "RegNetY-600MF"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("shape       layer1.0.conv2.weight: checkpoint [48, 8, 3, 3] vs arch [48, 16, 3, 3]")
               for line in lines)
    assert any(line.startswith("missing     layer3.6.conv1.weight [256, 256, 1, 1]") for line in lines)
    assert any(line.startswith("unexpected  layer4.5.conv3.weight [440, 440, 1, 1]") for line in lines)


def test_module_entry_point_exit_code(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "regnet_explore.regnet2mmdet", str(text), str(tmp_path / "o.pth")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and str(text) in proc.stderr
    good = tmp_path / "g.pyth"
    torch.save(to_pycls_checkpoint(RegNet("RegNetX-200MF", num_classes=1000)), good)
    proc = subprocess.run([sys.executable, "-m", "regnet_explore.regnet2mmdet", str(good), str(tmp_path / "o.pth")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "RegNetX-200MF" in proc.stdout
