"""JupyterLab: ``regnet-explore lab`` on the notebooks of a source checkout (else the current folder), and the Jupyter
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
import subprocess
import sys
from pathlib import Path

PLOTLY_ROUTE = "regnet-explore/plotly/"
PLOTLY_SERVED = "REGNET_EXPLORE_PLOTLY_SERVED"


def jupyter_command(jupyter_args: list[str], notebooks: Path) -> list[str]:
    """``jupyter lab`` with every argument passed through (a leading ``--`` dropped) and ``--allow-root`` added
    when run as root, which Jupyter otherwise refuses."""
    args = jupyter_args[1:] if jupyter_args[:1] == ["--"] else list(jupyter_args)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        args.append("--allow-root")
    return [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={notebooks}", *args]


def _cmd_lab(args: argparse.Namespace) -> int:
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    if not notebooks.is_dir():
        notebooks = Path.cwd()
    cmd = jupyter_command(args.jupyter_args, notebooks)
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


def register(sub: argparse._SubParsersAction) -> None:
    # '+' as the option prefix: every '-' argument (--no-browser, --port 8898, --version) is Jupyter's
    p = sub.add_parser("lab", prefix_chars="+", help="JupyterLab on the notebooks; every argument goes to jupyter lab",
                       description="JupyterLab on the notebooks. Every argument is passed to `jupyter lab` as is, "
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
