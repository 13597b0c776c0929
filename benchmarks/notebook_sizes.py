"""Saved size of each notebook after running it top to bottom: as JupyterLab saves it by default, and with its
widget state.

JupyterLab saves the outputs and, only when "Save Jupyter widget state" is switched on (off by default), the widget
state; both sizes are printed, with the largest outputs. The notebooks run with their QUICK settings, as the tests
run them, in a kernel that sees plotly's widget module served by this package's Jupyter server extension, as under
`jupyter lab` from this environment; `--inline-plotly` measures plotly's own FigureWidget (module in the state).
The widget state is nbclient's (as `jupyter nbconvert --execute` saves it), which keeps the binary buffers of every
message a widget was sent, also those the widget has since cleared (plotly's update messages): more than JupyterLab
saves. JupyterLab's own save with widget state is measured by tests/test_browser.py (its saved-sizes.txt).

    python benchmarks/notebook_sizes.py [NOTEBOOK ...] [--out DIR] [--inline-plotly]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from regnet_explore.lab import PLOTLY_ROUTE, PLOTLY_SERVED  # noqa: E402
from tests.test_notebooks import this_python_kernel  # noqa: E402  (the tests' kernel: this interpreter's)

LIMIT_MB = 2.0


def mb(nb) -> float:
    return len(nbformat.writes(nb).encode()) / 2**20


def largest_outputs(nb, n: int = 3) -> list[tuple[float, int, str]]:
    sizes = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            for mime, data in out.get("data", {}).items():
                sizes.append((len(json.dumps(data)) / 2**20, i, mime))
    return sorted(sizes, reverse=True)[:n]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    p.add_argument("--out", type=Path, help="write the executed notebooks here")
    p.add_argument("--inline-plotly", action="store_true", help="plotly's own FigureWidget (module in the state)")
    args = p.parse_args()
    if args.inline_plotly:
        os.environ.pop(PLOTLY_SERVED, None)
    else:
        os.environ[PLOTLY_SERVED] = PLOTLY_ROUTE
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"{'notebook':32s} {'run s':>6s} {'saved MB':>9s} {'+ widget state MB':>18s}  largest outputs")
    worst = 0.0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        km = this_python_kernel()
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", km=km, store_widget_state=True,
                                         resources={"metadata": {"path": str(path.parent)}})
        t0 = time.perf_counter()
        try:
            client.execute()
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
        seconds = time.perf_counter() - t0
        with_state = mb(nb)
        plain = copy.deepcopy(nb)
        plain.metadata.pop("widgets", None)
        saved = mb(plain)
        worst = max(worst, saved, with_state)
        top = ", ".join(f"cell {i} {mime} {size:.2f}" for size, i, mime in largest_outputs(nb))
        print(f"{path.name:32s} {seconds:6.0f} {saved:9.2f} {with_state:18.2f}  {top}", flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.out / path.name)
    print(f"largest saved notebook: {worst:.2f} MB (limit {LIMIT_MB} MB)")
    return 0 if worst <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
