"""``regnet-explore lab``: every argument reaches jupyter lab, without starting a server; the server extension
serves plotly's widget module."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from regnet_explore.cli import build_parser, main
from regnet_explore.lab import PLOTLY_ROUTE, jupyter_command

from .browser import JupyterLab


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


def test_jupyter_serves_plotly_widget_module(tmp_path):
    """The extension is enabled in this environment (setup.sh; a wheel install's data file) and serves plotly's
    module, byte for byte, at the route the served figure widgets import."""
    pytest.importorskip("jupyterlab")
    import plotly

    (tmp_path / "root").mkdir()
    lab = JupyterLab(tmp_path / "root", tmp_path / "state", tmp_path / "lab.log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/{PLOTLY_ROUTE}widgetbundle.js", timeout=30) as r:
            kind, body = r.headers["Content-Type"], r.read()
    finally:
        lab.stop()
    assert kind in ("application/javascript", "text/javascript")
    assert body == (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_bytes()
