"""JupyterLab: ``regnet-explore lab`` on working copies of a source checkout's notebooks (``work_dirs/notebooks``, so
that outputs saved while exploring never reach the tracked files), else on the current folder, or on the folder the
user names; and the Jupyter
server extension that serves plotly's widget module once (enabled by the config file this package installs in
``etc/jupyter/jupyter_server_config.d``).

Why the extension: a plotly ``FigureWidget`` sends its JavaScript module (4.7 MB, plotly.js inside) as widget state,
so a notebook saved with its widget state carries one copy per figure. With the module served at
``<base_url>regnet-explore/plotly/widgetbundle.js``, ``regnet_explore.viz.widgets.figure_widget`` gives figures whose
module is a few lines importing it (kernels learn that it is served from ``PLOTLY_SERVED`` in their environment).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from regnet_explore.viz.served_plotly import PLOTLY_ROUTE, PLOTLY_SERVED

CHECKOUT = Path(__file__).resolve().parents[1]  # a source checkout when it holds notebooks/
WORKING_COPIES = Path("work_dirs") / "notebooks"  # in the checkout; git ignores work_dirs/

ROOT_OPTIONS = ("--notebook-dir", "--ServerApp.root_dir", "--ServerApp.notebook_dir", "--NotebookApp.notebook_dir")


def chooses_root(args: list[str]) -> bool:
    """Whether the user's jupyter lab arguments name the folder to serve: one of ``ROOT_OPTIONS`` (``--x=DIR`` or
    ``--x DIR``) or a directory given as a positional argument, which jupyter_server serves too."""
    for arg in args:
        if arg.split("=", 1)[0] in ROOT_OPTIONS:
            return True
        if not arg.startswith("-") and Path(arg).is_dir():
            return True
    return False


def jupyter_command(jupyter_args: list[str], notebooks: Path | None) -> list[str]:
    """``jupyter lab`` with every argument passed through (a leading ``--`` dropped), serving ``notebooks`` unless
    the arguments choose a folder (:func:`chooses_root`) or ``notebooks`` is None, with ``--allow-root`` added when
    run as root, which Jupyter otherwise refuses."""
    args = jupyter_args[1:] if jupyter_args[:1] == ["--"] else list(jupyter_args)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        args.append("--allow-root")
    root = [] if notebooks is None or chooses_root(args) else [f"--notebook-dir={notebooks}"]
    return [sys.executable, "-m", "jupyter", "lab", *root, *args]


def working_copies(tracked: Path, work: Path) -> list[str]:
    """Copy each notebook of ``tracked`` that ``work`` lacks into ``work``, so that JupyterLab's autosave writes
    outputs and edits there, never into the tracked files. A copy that exists is the user's and stays; returns a
    line for each one older than its tracked notebook."""
    work.mkdir(parents=True, exist_ok=True)
    notes = []
    for source in sorted(tracked.glob("*.ipynb")):
        copy = work / source.name
        if not copy.exists():
            shutil.copy2(source, copy)
        elif copy.stat().st_mtime < source.stat().st_mtime and copy.read_bytes() != source.read_bytes():
            notes.append(f"kept your {copy}: {source} is newer (delete your copy to take it)")
    return notes


def _cmd_lab(args: argparse.Namespace) -> int:
    notebooks = None  # outside a source checkout: the current folder, as jupyter lab serves by default
    if (CHECKOUT / "notebooks").is_dir() and not chooses_root(args.jupyter_args):
        notebooks = CHECKOUT / WORKING_COPIES
        for note in working_copies(CHECKOUT / "notebooks", notebooks):
            print(note, flush=True)
    cmd = jupyter_command(args.jupyter_args, notebooks)
    print(" ".join(cmd), flush=True)
    return run_forwarding_signals(cmd)


def run_forwarding_signals(cmd: list[str]) -> int:
    """Run ``cmd`` to its end. SIGTERM and SIGHUP sent to this launcher are passed on, so that whoever stops it (a
    service manager, a test, a closed terminal) stops the Jupyter server and its kernels too; Ctrl-C reaches both
    from the terminal already, so the launcher ignores it and waits for Jupyter's own shutdown."""
    process = subprocess.Popen(cmd)
    forwarded = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, lambda signum, _frame: process.send_signal(signum)) for s in forwarded}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def register(sub: argparse._SubParsersAction) -> None:
    # '+' as the option prefix: every '-' argument (--no-browser, --port 8898, --version) is Jupyter's
    p = sub.add_parser("lab", prefix_chars="+", help="JupyterLab on the notebooks; every argument goes to jupyter lab",
                       description="JupyterLab on working copies of the notebooks (work_dirs/notebooks in a source "
                                   "checkout: outputs and edits are saved there, the tracked notebooks stay clean; "
                                   "a copy you have is kept), or on the folder you name with --notebook-dir, "
                                   "--ServerApp.root_dir or a directory argument. "
                                   "Every argument is passed to `jupyter lab` as is, "
                                   "e.g. `regnet-explore lab --no-browser --port 8898` or `regnet-explore lab "
                                   "--version`; --allow-root is added when run as root. `regnet-explore lab +h` "
                                   "shows this help, `regnet-explore lab --help` Jupyter's.")
    p.add_argument("jupyter_args", nargs="*", help="arguments for jupyter lab")
    p.set_defaults(func=_cmd_lab)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "regnet_explore.lab"}]


def _load_jupyter_server_extension(server_app) -> None:
    """Serve plotly's widget module; kernels started from now on inherit ``PLOTLY_SERVED``."""
    import plotly
    from jupyter_server.utils import url_path_join
    from tornado.web import StaticFileHandler

    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], PLOTLY_ROUTE, r"(widgetbundle\.js)")
    package_data = Path(plotly.__file__).parent / "package_data"
    web_app.add_handlers(".*$", [(route, StaticFileHandler, {"path": str(package_data)})])
    os.environ[PLOTLY_SERVED] = PLOTLY_ROUTE
