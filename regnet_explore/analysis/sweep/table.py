"""A sweep's results table: one JSON row a model in ``results.jsonl`` (a shard: ``results.shard-I-of-N.jsonl``),
appended by the one process that writes it; read back merged over shards, one row a model."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import torch

from regnet_explore.analysis.sweep.settings import SweepConfig, pin_settings
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import jsonl_appender
from regnet_explore.machine import device_name


def results_path(out: str | Path, shard: tuple[int, int] = (0, 1)) -> Path:
    i, n = shard
    return Path(out) / ("results.jsonl" if n == 1 else f"results.shard-{i}-of-{n}.jsonl")


def read_rows(path: Path) -> list[dict]:
    """The rows of one results file; the text after the last newline (a row torn by a kill) is ignored."""
    lines = path.read_bytes().split(b"\n")[:-1]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise RegNetExploreError(f"{path}:{number}: not a JSON row (the file was edited or corrupted)") from None
    return rows


def finished(row: dict) -> bool:
    """A row of a trained and scored model (rows written before failures were recorded have no status)."""
    return row.get("status", "ok") == "ok"


def load_results(out: str | Path, failed: bool = False) -> pd.DataFrame:
    """The models of a sweep directory (all shards merged), one row each, ordered by index: the finished ones, and
    with ``failed=True`` also those whose row says ``status: failed`` (and why, in ``reason``). A model retried
    after a failure is represented by its finished row."""
    out = Path(out)
    if not out.is_dir():
        raise RegNetExploreError(f"{out}: no such sweep directory")
    rows: dict[tuple[str, int], dict] = {}
    for path in sorted(out.glob("results*.jsonl")):
        for row in read_rows(path):
            key = (row["space"], row["index"])
            if key not in rows or finished(row) or not finished(rows[key]):
                rows[key] = row
    kept = [r for r in rows.values() if failed or finished(r)]
    table = pd.DataFrame(kept)
    return table.sort_values(["space", "index"], ignore_index=True) if len(table) else table


@contextlib.contextmanager
def results_writer(cfg: SweepConfig) -> Iterator[Callable[[dict], None]]:
    """Pin ``cfg``'s settings in its directory (:func:`pin_settings`) and yield ``write(row)``, which appends to this
    shard's results file (:func:`io.jsonl_appender`: locked, a torn last line cut off first)."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    pin_settings(cfg)
    busy = "another sweep is writing it (same --out and --shard); wait for it to finish or stop it"
    with jsonl_appender(results_path(cfg.out, cfg.shard), busy) as write:
        yield write


class MixedCPUWarning(UserWarning):
    """A sweep adds rows computed on another kind of device than the rows already in its table."""


def warn_mixed_devices(cfg: SweepConfig) -> None:
    """Warn when ``cfg.out``'s table holds rows of another device kind than the one this sweep trains on: a CPU
    kind's math libraries shift the errors of a short run (docs/sweeps.md), so the spaces compared should be
    trained on the same kinds in equal numbers (:func:`run_sweeps` interleaves them)."""
    table = load_results(cfg.out) if Path(cfg.out).is_dir() else pd.DataFrame()
    if "device_name" not in table:
        return
    here = device_name(cfg.devices[0] if cfg.devices else ("cuda" if torch.cuda.is_available() else "cpu"))
    kinds = sorted(set(table["device_name"].dropna()))
    if kinds and here not in kinds:
        warnings.warn(f"{cfg.out}: its rows were computed on {'; '.join(kinds)}, this machine adds rows of {here}: "
                      "train the spaces you compare on the same kinds in equal numbers", MixedCPUWarning,
                      stacklevel=3)
