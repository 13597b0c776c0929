"""``regnet-explore lab``: every argument reaches jupyter lab, without starting a server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from regnet_explore.cli import build_parser, main
from regnet_explore.lab import jupyter_command


def test_every_argument_is_passed_through():
    args = build_parser().parse_args(["lab", "--no-browser", "--port", "8898", "--ServerApp.token=x"])
    assert args.jupyter_args == ["--no-browser", "--port", "8898", "--ServerApp.token=x"]
    cmd = jupyter_command(["--", "--version"], Path("/nb"))
    assert cmd[1:5] == ["-m", "jupyter", "lab", "--notebook-dir=/nb"] and cmd[5] == "--version"
    assert "--" not in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert jupyter_command(["--allow-root"], Path("/nb")).count("--allow-root") == 1


def test_lab_version_runs_jupyter_and_returns(capfd):
    pytest.importorskip("jupyterlab")
    assert main(["lab", "--version"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0].endswith("lab --notebook-dir=" + str(Path(__file__).resolve().parents[1] / "notebooks")
                           + " --version" + (" --allow-root" if os.geteuid() == 0 else ""))
    assert out[-1].split(".")[0].isdigit()  # jupyter lab's version, e.g. 4.6.6


def test_jupyterlab_needs_no_build(tmp_path):
    """setup.sh removes the source extension dash installs; what is left is prebuilt (no "Build Recommended")."""
    pytest.importorskip("jupyterlab")
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                         env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)})
    assert out.returncode == 0
    assert "build" not in (out.stdout + out.stderr).lower().replace("built into", "")
