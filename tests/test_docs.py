"""Figures quoted in the docs are the package's output, not prose: each marked block equals what its command prints
today."""

from __future__ import annotations

import re
from pathlib import Path

from regnet_explore.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _block(path: Path, marker: str) -> str:
    text = path.read_text()
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```text\n(.*?)\n```", text, re.S)
    assert found, f"{path.name}: no block marked {marker!r}"
    return found.group(1)


def test_sweeps_doc_quotes_sweep_report_shipped(capsys):
    assert main(["sweep-report", "--shipped"]) == 0
    printed = capsys.readouterr().out
    comparison = printed[printed.index("comparison of "):].rstrip("\n")
    assert _block(DOCS / "sweeps.md", "sweep-report --shipped") == comparison


def test_latency_doc_quotes_latency_report_shipped(capsys):
    assert main(["latency-report", "--shipped"]) == 0
    assert _block(DOCS / "latency.md", "latency-report --shipped") == capsys.readouterr().out.rstrip("\n")
