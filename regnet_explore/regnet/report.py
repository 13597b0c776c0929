"""The zoo as a table: every pycls RegNet's design parameters, stages and complexity beside pycls's figures."""

from __future__ import annotations

from regnet_explore.regnet.backbone import regnet_complexity
from regnet_explore.regnet.design import generate_stages
from regnet_explore.regnet.zoo import ZOO


def zoo_report(family: str | None = None) -> str:
    """One line per zoo model: parameters, stages, and complexity next to pycls's published figures."""
    head = (f"{'model':14s} {'d':>3s} {'w0':>4s} {'wa':>7s} {'wm':>5s} {'g':>4s}  {'stage widths':24s} "
            f"{'depths':14s} {'GFLOPs':>7s} {'Mparams':>8s} {'Macts':>6s}  pycls")
    lines = [head, "-" * len(head)]
    for name, e in ZOO.items():
        if family and not name.lower().startswith(family.lower()):
            continue
        p, st, cx = e.params, generate_stages(e.params), regnet_complexity(e.params)
        ok = cx["flops"] == e.reference.flops and cx["params"] == e.reference.params
        lines.append(f"{name:14s} {p.depth:3d} {p.w0:4d} {p.wa:7.2f} {p.wm:5.2f} {p.group_w:4d}  "
                     f"{str(list(st.widths)):24s} {str(list(st.depths)):14s} {cx['flops'] / 1e9:7.3f} "
                     f"{cx['params'] / 1e6:8.3f} {cx['acts'] / 1e6:6.2f}  {'= zoo' if ok else 'DIFFERS'}")
    return "\n".join(lines)


__all__ = ["zoo_report"]
