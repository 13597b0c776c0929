"""The RegNet core's tables: the zoo, a network's stages, the quantization pitfall and the two group-width roundings.

Each ``*_rows`` function returns one dict per row (column name -> value) with the values the reports print and the
design-space figures draw (``regnet_explore.viz.design_space`` wraps them in DataFrames); ``zoo_report`` and
``stages_report`` are the command line's text versions of two of them.
"""

from __future__ import annotations

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import out_channels, regnet_complexity
from regnet_explore.regnet.design import RegNetStages, generate_stages
from regnet_explore.regnet.pitfall import diagnose_stages, pitfall_table
from regnet_explore.regnet.zoo import ZOO

# mmdet3d's PointPillars RegNet backbones feed the FPN from stages 1..3 (0-based)
FPN_OUT_INDICES = (1, 2, 3)


def zoo_rows(family: str | None = None) -> list[dict]:
    """One row per zoo model (``family``: a name prefix, any case): design parameters, stages, our complexity
    (pycls counting, 224 px), pycls's top-1 error (%) and whether our FLOPs and parameters equal pycls's."""
    rows = []
    for name, e in ZOO.items():
        if family and not name.lower().startswith(family.lower()):
            continue
        p, st, cx = e.params, generate_stages(e.params), regnet_complexity(e.params)
        rows.append({"name": name, "family": name.split("-")[0], "depth": p.depth, "w0": p.w0, "wa": p.wa,
                     "wm": p.wm, "group_w": p.group_w, "widths": list(st.widths), "depths": list(st.depths),
                     "GFLOPs": cx["flops"] / 1e9, "params (M)": cx["params"] / 1e6, "acts (M)": cx["acts"] / 1e6,
                     "top1_err": e.reference.top1_err,
                     "matches_pycls": cx["flops"] == e.reference.flops and cx["params"] == e.reference.params})
    return rows


def zoo_report(family: str | None = None) -> str:
    """One line per zoo model: parameters, stages, and complexity next to pycls's published figures."""
    head = (f"{'model':14s} {'d':>3s} {'w0':>4s} {'wa':>7s} {'wm':>5s} {'g':>4s}  {'stage widths':24s} "
            f"{'depths':14s} {'GFLOPs':>7s} {'Mparams':>8s} {'Macts':>6s}  pycls")
    lines = [head, "-" * len(head)]
    for r in zoo_rows(family):
        lines.append(f"{r['name']:14s} {r['depth']:3d} {r['w0']:4d} {r['wa']:7.2f} {r['wm']:5.2f} {r['group_w']:4d}  "
                     f"{str(r['widths']):24s} {str(r['depths']):14s} {r['GFLOPs']:7.3f} "
                     f"{r['params (M)']:8.3f} {r['acts (M)']:6.2f}  {'= zoo' if r['matches_pycls'] else 'DIFFERS'}")
    return "\n".join(lines)


def stage_rows(st: RegNetStages) -> list[dict]:
    """One row per stage: its blocks, quantized width (None for explicit stages, which carry no pre-adjustment
    widths), width, depth, group width, groups and bottleneck width. ``layer`` is the stage's key prefix in the
    backbone."""
    first = 0
    pre = st.pre_adjust_widths or (None,) * st.num_stages
    rows = []
    for i in range(st.num_stages):
        d = st.depths[i]
        rows.append({"stage": i + 1, "layer": f"layer{i + 1}",
                     "blocks": f"{first}-{first + d - 1}" if d > 1 else f"{first}", "quantized_w": pre[i],
                     "width": st.widths[i], "depth": d, "group_w": st.group_widths[i], "groups": st.groups[i],
                     "bottleneck_w": st.bottleneck_widths[i]})
        first += d
    return rows


def stages_report(st: RegNetStages) -> str:
    """The stages as the ``arch`` command prints them."""
    lines = ["stage  width  depth  group_w  groups  bottleneck"]
    for r in stage_rows(st):
        lines.append(f"  {r['stage']}    {r['width']:5d}  {r['depth']:5d}  {r['group_w']:7d}  "
                     f"{r['groups']:6d}  {r['bottleneck_w']:10d}")
    return "\n".join(lines)


def _fpn_in_channels(st: RegNetStages) -> list[int] | str:
    try:
        return out_channels(st, FPN_OUT_INDICES)
    except RegNetExploreError:
        return f"none: {st.num_stages} stages"


def pitfall_rows(decimals: int = 1, family: str = "RegNetX") -> list[dict]:
    """Every zoo model of ``family``: exact vs rounded stages, how many backbone keys differ, FPN in_channels.

    ``key_diffs`` counts missing, unexpected and reshaped keys when the exact model's weights are loaded into the
    rounded network; ``fpn_*`` are the widths of stages 1..3, mmdet3d's ``pts_neck.in_channels`` (a string
    ``none: n stages`` where the network has no stage 3).
    """
    rows = []
    for r in pitfall_table(decimals, family):
        exact = ZOO[r.name].params
        diag = diagnose_stages(r.rounded, r.exact, r.name)
        rows.append({"name": r.name, "wa": exact.wa, "wm": exact.wm, "wa_rounded": r.rounded_params.wa,
                     "wm_rounded": r.rounded_params.wm, "widths": list(r.exact.widths),
                     "depths": list(r.exact.depths), "widths_rounded": list(r.rounded.widths),
                     "depths_rounded": list(r.rounded.depths), "stages_changed": diag.stage_count_changed,
                     "key_diffs": len(diag.key_diffs), "fpn_in_channels": _fpn_in_channels(r.exact),
                     "fpn_in_channels_rounded": _fpn_in_channels(r.rounded)})
    return rows


def rounding_rows(family: str | None = None) -> list[dict]:
    """Zoo stage widths with banker's (pycls, mmdet, timm) vs half-up (torchvision) group-width rounding
    (``family``: a name prefix, as spelt in the zoo)."""
    rows = []
    for name, e in ZOO.items():
        if family and not name.startswith(family):
            continue
        bankers, half_up = generate_stages(e.params, "bankers"), generate_stages(e.params, "half_up")
        rows.append({"name": name, "pre_adjust": list(bankers.pre_adjust_widths), "group_w": e.params.group_w,
                     "bankers": list(bankers.widths), "half_up": list(half_up.widths),
                     "differs": bankers.widths != half_up.widths})
    return rows


__all__ = ["FPN_OUT_INDICES", "pitfall_rows", "rounding_rows", "stage_rows", "stages_report", "zoo_report",
           "zoo_rows"]
