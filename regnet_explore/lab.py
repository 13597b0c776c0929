"""``regnet-explore lab``: JupyterLab on the notebooks of a source checkout (else the current folder)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


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
