"""Failures at the boundary of a run, each one line on stderr with exit code 2 and nothing written: a Ray cluster
that cannot be reached, a CUDA device asked of a machine without one, a disk that is read-only or full; and ``test``
without weights (a warning, recorded) or resuming a detections stream it did not write (refused, left as it was)."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from regnet_explore.cli import main

from .helpers import cli_error

LYFT = "regnet-400mf-fpn-lyft"


def test_an_unreachable_ray_cluster_is_one_line_and_fast(tmp_path, capsys):
    out = tmp_path / "sweep"
    line = cli_error(capsys, ["sweep", "regnetx", "--samples", "1", "--budget", "1", "--out", str(out),
                              "--backend", "ray", "--address", "127.0.0.1:1"])
    assert "--address 127.0.0.1:1: no Ray cluster answers there" in line and "ray start --head" in line
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [["train", LYFT, "--device", "cuda", "--work-dir", "{out}"],
                                  ["test", LYFT, "--device", "cuda", "--out", "{out}"],
                                  ["infer", LYFT, "--device", "cuda", "--sample", "x", "--out", "{out}/b.json"],
                                  ["sweep", "regnetx", "--samples", "1", "--budget", "1", "--device", "cuda",
                                   "--out", "{out}"],
                                  ["demo", "--device", "cuda", "--out", "{out}"]])
def test_cuda_on_a_machine_without_it_is_one_line(argv, tmp_path, capsys):
    out = tmp_path / "out"
    line = cli_error(capsys, [a.replace("{out}", str(out)) for a in argv])
    assert "device cuda: CUDA is not available on this machine" in line
    assert not out.exists()


@pytest.mark.parametrize(("code", "hint"), [(errno.EROFS, "the file system is read-only"),
                                            (errno.ENOSPC, "the disk is full")])
def test_a_read_only_or_full_disk_is_one_line_with_what_to_do(code, hint, tmp_path, capsys, monkeypatch):
    def refuse(payload, path):
        raise OSError(code, "cannot write", str(path))

    monkeypatch.setattr("regnet_explore.commands.detection.write_json_atomic", refuse)
    points = tmp_path / "frame.bin"
    torch.zeros(50, 5).numpy().tofile(points)
    line = cli_error(capsys, ["infer", LYFT, "--points", str(points), "--out", str(tmp_path / "boxes.json")])
    assert f"{tmp_path / 'boxes.json'}: cannot write; {hint}" in line


def test_test_without_weights_warns_and_says_so_in_its_metrics(lyft_root, tmp_path, capsys):
    out = tmp_path / "test"
    assert main(["test", LYFT, "--data", str(lyft_root), "--out", str(out), "--limit", "2", "--workers", "0"]) == 0
    err = capsys.readouterr().err
    warning = "regnet-explore test: warning: no checkpoint: the detector's weights are random"
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"{warning}, so its boxes and metrics mean nothing (metrics.json says so)"]
    assert json.loads((out / "metrics.json").read_text())["weights"] == "random: no checkpoint given"


def test_resume_refuses_a_detections_stream_it_did_not_write(lyft_root, tmp_path, capsys):
    out = tmp_path / "test"
    out.mkdir()
    foreign = out / "detections.jsonl"
    foreign.write_text('{"token": "someone else\'s"}\n')
    line = cli_error(capsys, ["test", LYFT, "--data", str(lyft_root), "--out", str(out), "--resume", "--workers",
                              "0"])
    assert "not written by `regnet-explore test`" in line
    assert foreign.read_text() == '{"token": "someone else\'s"}\n'
