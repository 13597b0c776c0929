"""``regnet-explore lab``: JupyterLab on the notebooks of a source checkout (else the current folder)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def _cmd_lab(args: argparse.Namespace) -> int:
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    if not notebooks.is_dir():
        notebooks = Path.cwd()
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={notebooks}", *args.jupyter_args]
    print(" ".join(cmd))
    return subprocess.call(cmd)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="JupyterLab on the notebooks (extra arguments go to jupyter lab)")
    p.add_argument("jupyter_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_lab)
