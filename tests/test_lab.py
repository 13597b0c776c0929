"""``regnet-explore lab``: every argument reaches jupyter lab, a folder the user names wins, the tracked notebooks open
as working copies; the server it starts serves the named folder and plotly's widget module, news prompt off."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from regnet_explore import lab
from regnet_explore.cli import build_parser, main
from regnet_explore.lab import PLOTLY_ROUTE, WORKING_COPIES, chooses_root, jupyter_command, working_copies

from .browser import JupyterLab


def test_every_argument_is_passed_through():
    args = build_parser().parse_args(["lab", "--no-browser", "--port", "8898", "--ServerApp.token=x"])
    assert args.jupyter_args == ["--no-browser", "--port", "8898", "--ServerApp.token=x"]
    cmd = jupyter_command(["--", "--version"], Path("/nb"))
    assert cmd[1:5] == ["-m", "jupyter", "lab", "--notebook-dir=/nb"] and cmd[5] == "--version"
    assert "--" not in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
    assert jupyter_command(["--allow-root"], Path("/nb")).count("--allow-root") == 1


@pytest.mark.parametrize("chosen", [["--notebook-dir", "DIR"], ["--notebook-dir=DIR"], ["--ServerApp.root_dir=DIR"],
                                    ["--ServerApp.root_dir", "DIR"], ["--no-browser", "DIR"]])
def test_a_folder_the_user_names_wins(chosen, tmp_path):
    args = [str(tmp_path) if a == "DIR" else a.replace("DIR", str(tmp_path)) for a in chosen]
    cmd = jupyter_command(args, Path("/nb"))
    assert "--notebook-dir=/nb" not in cmd and cmd[4:4 + len(args)] == args
    assert not chooses_root(["--port", "8898", "--no-browser"])


def test_notebooks_open_as_working_copies_that_keep_the_users_work(tmp_path):
    tracked, work = tmp_path / "notebooks", tmp_path / "work"
    tracked.mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (tracked / name).write_text(name)
    assert working_copies(tracked, work) == []
    assert sorted(p.name for p in work.iterdir()) == ["a.ipynb", "b.ipynb"]
    (work / "a.ipynb").write_text("the user's outputs")
    os.utime(work / "a.ipynb", (1, 1))  # older than the tracked notebook, which a pull has just updated
    notes = working_copies(tracked, work)
    assert (work / "a.ipynb").read_text() == "the user's outputs"
    assert len(notes) == 1 and "a.ipynb" in notes[0] and "newer" in notes[0]
    assert (tracked / "a.ipynb").read_text() == "a.ipynb"


def test_lab_serves_working_copies_of_the_checkouts_notebooks(capfd, monkeypatch, tmp_path):
    pytest.importorskip("jupyterlab")
    checkout = tmp_path / "checkout"
    shutil.copytree(Path(__file__).resolve().parents[1] / "notebooks", checkout / "notebooks")
    monkeypatch.setattr(lab, "CHECKOUT", checkout)
    assert main(["lab", "--version"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[-2].endswith("lab --notebook-dir=" + str(checkout / WORKING_COPIES) + " --version"
                            + (" --allow-root" if os.geteuid() == 0 else ""))
    assert out[-1].split(".")[0].isdigit()  # jupyter lab's version, e.g. 4.6.6
    tracked = sorted(p.name for p in (checkout / "notebooks").glob("*.ipynb"))
    assert tracked and all((checkout / WORKING_COPIES / name).exists() for name in tracked)


def test_jupyterlab_needs_no_build(tmp_path):
    """setup.sh removes the source extension dash installs; what is left is prebuilt (no "Build Recommended")."""
    pytest.importorskip("jupyterlab")
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                         env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)})
    assert out.returncode == 0
    assert "build" not in (out.stdout + out.stderr).lower().replace("built into", "")


def test_lab_serves_the_named_folder_with_plotly_and_no_news_prompt(tmp_path):
    """``regnet-explore lab --notebook-dir DIR`` serves DIR; the extension is enabled in this environment (setup.sh;
    a wheel install's data file) and serves plotly's module, byte for byte, at the route the served figure widgets
    import; JupyterLab's settings for this environment turn the news prompt off."""
    pytest.importorskip("jupyterlab")
    import plotly

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "mine.ipynb").write_text("{}")
    server = JupyterLab(tmp_path / "root", tmp_path / "state", tmp_path / "lab.log")
    try:
        served = [item["name"] for item in server.get("api/contents")["content"]]
        news = server.get("lab/api/settings/@jupyterlab/apputils-extension:notification")["schema"]["properties"]
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/{PLOTLY_ROUTE}widgetbundle.js", timeout=30) as r:
            kind, body = r.headers["Content-Type"], r.read()
    finally:
        server.stop()
    assert served == ["mine.ipynb"]
    # overrides.json becomes the defaults (JupyterLab's own: "none", which asks)
    assert news["fetchNews"]["default"] == "false" and news["checkForUpdates"]["default"] is False
    assert kind in ("application/javascript", "text/javascript")
    assert body == (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_bytes()


def test_stopping_the_launcher_stops_jupyter_and_its_kernels(tmp_path):
    """SIGTERM to ``regnet-explore lab`` (a service manager, a closed terminal, a test) reaches the Jupyter server,
    which shuts its kernels down: nothing outlives the launcher."""
    pytest.importorskip("jupyterlab")
    psutil = pytest.importorskip("psutil")
    (tmp_path / "root").mkdir()
    server = JupyterLab(tmp_path / "root", tmp_path / "state", tmp_path / "lab.log")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/kernels?token={server.token}",
                                         data=b"{}", method="POST")
        kernel = json.loads(urllib.request.urlopen(request, timeout=60).read())["id"]
        launcher = psutil.Process(server.process.pid)
        deadline = time.monotonic() + 60
        while not (spawned := [p for p in launcher.children(recursive=True) if kernel in " ".join(p.cmdline())]):
            assert time.monotonic() < deadline, "the kernel did not start"
            time.sleep(0.5)
        jupyter = launcher.children()
        server.process.terminate()  # the launcher alone, as a service manager would
        assert server.process.wait(timeout=60) is not None
        gone, alive = psutil.wait_procs([*jupyter, *spawned], timeout=30)
        assert not alive, [p.cmdline()[:4] for p in alive]
    finally:
        server.stop()
