"""Every notebook in notebooks/ is committed without outputs; those the browser test does not run (it runs 01, 04
and 05 in JupyterLab) run top to bottom here on this interpreter's kernel, with the tests' settings injected."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from .helpers import NOTEBOOK_DIR, NOTEBOOK_TEST_PARAMETERS, SAVED_NOTEBOOK_LIMIT_MB, with_test_parameters

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
manager = pytest.importorskip("jupyter_client.manager")

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IN_THE_BROWSER = {"01_design_space.ipynb", "04_nuscenes_scenes.ipynb", "05_lyft_scenes.ipynb"}  # test_browser.py


def this_python_kernel() -> manager.KernelManager:
    """A manager for the ``python3`` kernel of this interpreter's environment.

    Only ``sys.prefix``'s kernelspecs are searched, so a user-level ``python3`` spec (``~/.local/share/jupyter``)
    pointing at another Python cannot take over; ipykernel's spec says ``python``, which jupyter_client replaces
    with ``sys.executable``.
    """
    specs = kernelspec.KernelSpecManager(kernel_dirs=[os.path.join(sys.prefix, "share", "jupyter", "kernels")])
    return manager.KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def test_kernel_is_this_interpreter():
    assert this_python_kernel().format_kernel_cmd()[0] == sys.executable


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before committing"
    assert nb.metadata.kernelspec.name == "python3"


def execute(nb) -> None:
    """Run every cell in the notebook folder; CellExecutionError (naming the cell) at the first failure."""
    km = this_python_kernel()
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", km=km,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    finally:  # nbclient leaves a kernel it was given running: each would hold its notebook's memory until exit
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")


def _assigned(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_code_cell_holds_the_parameters_the_tests_set(path: Path):
    """Papermill's convention: one cell tagged ``parameters``, the first code cell; the tests' settings name only
    variables it defines (a misspelt one would leave the notebook on its full-size default)."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], tagged
    settings = NOTEBOOK_TEST_PARAMETERS.get(path.name, "").format(nuscenes="/n", lyft="/l")
    assert _assigned(settings) <= _assigned(code[0].source)


@pytest.mark.notebook
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name not in IN_THE_BROWSER], ids=lambda p: p.name)
def test_notebook_runs(path: Path):
    """... and saved as JupyterLab saves by default (outputs, no widget state) it stays small; saved with its widget
    state, tests/test_browser.py checks it in JupyterLab."""
    nb = with_test_parameters(nbformat.read(path, as_version=4), path.name)
    execute(nb)
    nb.metadata.pop("widgets", None)  # nbclient keeps it; JupyterLab's default save does not
    saved_mb = len(nbformat.writes(nb).encode()) / 2**20
    assert saved_mb < SAVED_NOTEBOOK_LIMIT_MB, f"{path.name}: {saved_mb:.2f} MB saved"


USES_PYCLS = [p for p in NOTEBOOKS if "import pycls" in p.read_text() or "from pycls" in p.read_text()]


@pytest.mark.notebook
@pytest.mark.parametrize("path", USES_PYCLS, ids=lambda p: p.name)
def test_notebook_runs_without_pycls(path: Path):
    """pycls is an optional reference: with it unimportable the notebook takes its fallback path."""
    nb = with_test_parameters(nbformat.read(path, as_version=4), path.name)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nsys.modules['pycls'] = None  # import pycls fails"))
    execute(nb)
