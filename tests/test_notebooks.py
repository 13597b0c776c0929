"""Every notebook in notebooks/ is committed without outputs, with its parameters where the tests can set them; the
notebooks that use pycls also run without it, here on this interpreter's kernel. Every notebook runs in JupyterLab
in tests/test_browser*.py."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from .helpers import NOTEBOOK_DIR, NOTEBOOK_TEST_PARAMETERS, with_test_parameters

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
manager = pytest.importorskip("jupyter_client.manager")

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


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
    return {name.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for target in node.targets
            for name in ast.walk(target) if isinstance(name, ast.Name)}  # `A, B = ...` names both


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_code_cell_holds_the_parameters_the_tests_set(path: Path):
    """Papermill's convention: one cell tagged ``parameters``, the first code cell; the tests' settings name only
    variables it defines (a misspelt one would leave the notebook on its full-size default)."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], tagged
    settings = NOTEBOOK_TEST_PARAMETERS.get(path.name, "").format(nuscenes="/n", lyft="/l")
    assert _assigned(settings) <= _assigned(code[0].source)


USES_PYCLS = [p for p in NOTEBOOKS if "import pycls" in p.read_text() or "from pycls" in p.read_text()]


@pytest.mark.notebook
@pytest.mark.parametrize("path", USES_PYCLS, ids=lambda p: p.name)
def test_notebook_runs_without_pycls(path: Path):
    """pycls is an optional reference: with it unimportable the notebook takes its fallback path."""
    nb = with_test_parameters(nbformat.read(path, as_version=4), path.name)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nsys.modules['pycls'] = None  # import pycls fails"))
    execute(nb)
