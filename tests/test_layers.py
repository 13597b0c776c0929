"""The package's layers (docs/architecture.md) hold: import-linter checks the contracts in pyproject.toml, and a
copy of the package with an upward import or a cycle added breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=where, env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers_and_has_no_cycles():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "added", "broken"), [
    ("detection/boxes.py", "from regnet_explore.viz import figures", "regnet_explore.detection is not allowed to "
                                                                     "import regnet_explore.viz"),
    ("data/points.py", "import regnet_explore.synthetic", "regnet_explore.data is not allowed to import "
                                                          "regnet_explore.synthetic"),
    ("analysis/stats.py", "from regnet_explore.analysis import comparison", ".stats -> .comparison"),
])
def test_an_upward_import_or_a_cycle_breaks_the_contract(tmp_path, module, added, broken):
    shutil.copytree(ROOT / "regnet_explore", tmp_path / "regnet_explore",
                    ignore=shutil.ignore_patterns("__pycache__", "results", "weights"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "regnet_explore" / "weights").mkdir()
    shutil.copy(ROOT / "regnet_explore" / "weights" / "__init__.py", tmp_path / "regnet_explore" / "weights")
    with open(tmp_path / "regnet_explore" / module, "a") as f:
        f.write(f"\n{added}  # noqa\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert broken in done.stdout, done.stdout[-3000:]
