"""A sweep directory in words: its settings, error and complexity ranges, the best models and the failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from regnet_explore.analysis.comparison import REGNET_PARAMS
from regnet_explore.analysis.sweep.settings import read_settings
from regnet_explore.analysis.sweep.table import load_results


def _joined(values) -> str:
    return "-".join(f"{v:g}" for v in values)


def describe(row: pd.Series | dict) -> str:
    """A model in one line: complexity, then its design parameters (the six RegNet numbers where present) and
    the stages it builds."""
    parts = [f"{row['flops'] / 1e9:.3f} GFLOPs, {row['params_count'] / 1e6:.2f} M params"]
    regnet = [f"{k} {row[k]:g}" for k in REGNET_PARAMS if k in row and pd.notna(row[k])]
    if regnet:
        parts.append(", ".join(regnet))
    parts.append(f"widths {_joined(row['stage_widths'])}, depths {_joined(row['stage_depths'])}, "
                 f"group widths {_joined(row['stage_group_widths'])}, bottleneck {_joined(row['stage_bot_muls'])}")
    return "; ".join(parts)


def report(out: str | Path) -> str:
    """The summary of a sweep directory's table: settings, error and complexity ranges, the best models, the models
    that failed and why."""
    out = Path(out)
    everything = load_results(out, failed=True)
    ok = everything["status"].fillna("ok") == "ok" if "status" in everything else pd.Series(True, everything.index)
    table, failed = everything[ok], everything[~ok]
    lines = []
    if (out / "sweep.json").exists():
        s = read_settings(out)
        lines.append(f"{out}: {s.space} sweep, seed {s.seed}, {s.budget} iterations per model, "
                     f"error = 1 - {s.metric}, detector {s.detector}")
    if not len(table):
        lines.append("no finished models yet")
    else:
        err = table["error"]
        counts = ", ".join(f"{k} {v}" for k, v in table["space"].value_counts().items())
        lines.append(f"{len(table)} models ({counts}){f', {len(failed)} failed' if len(failed) else ''}; "
                     f"error min {err.min():.4f}, median {err.median():.4f}, max {err.max():.4f}")
        lines.append(f"backbone {table['flops'].min() / 1e9:.3f}-{table['flops'].max() / 1e9:.3f} GFLOPs, "
                     f"{table['params_count'].min() / 1e6:.2f}-{table['params_count'].max() / 1e6:.2f} M params; "
                     f"per model: {table['wall_s'].median():.1f} s wall (median), "
                     f"{table['samples_per_s'].median():.2f} training samples/s")
        best = table.nsmallest(5, "error")
        lines.append("best models:")
        lines += [f"  {r['space']}-{r['index']}: error {r['error']:.4f}; {describe(r)}" for _, r in best.iterrows()]
    if len(failed):
        lines.append(f"failed models ({len(failed)}; rerun with --retry-failed to train them again):")
        lines += [f"  {r['space']}-{r['index']}: {r['reason']}" for _, r in failed.iterrows()]
    return "\n".join(lines)


__all__ = ["describe", "report"]
