"""Figures and tables of the RegNet design space: per-block widths, stages, complexity, the zoo, the pitfall.

Plain functions over :mod:`regnet_explore.regnet`; nothing here does network math of its own. Figures are plotly
(``go.Figure``, for the notebooks); tables are pandas DataFrames of the rows :mod:`regnet_explore.regnet.report`
computes (one per stage, zoo model or pitfall comparison), the rows the command line prints as text.

A width plot has one point per block ``j = 0 .. d-1``: the continuous line ``u_j = w0 + wa * j``, the quantized
widths ``w_j = q * round(w0 * wm**k_j / q)`` (a step function: runs of equal ``w_j`` are the stages) and the
stage widths after the group-width adjustment, which are what the backbone's tensors have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from regnet_explore.analysis.sampling import IMAGENET, POINTPILLARS_NUS, BackboneInput
from regnet_explore.regnet.backbone import Arch, resolve_stages
from regnet_explore.regnet.design import (
    BlockWidths,
    RegNetParams,
    RegNetStages,
    Rounding,
    block_widths,
    generate_stages,
)
from regnet_explore.regnet.pitfall import paper_rounded
from regnet_explore.regnet.report import pitfall_rows, rounding_rows, stage_rows, zoo_rows
from regnet_explore.regnet.zoo import zoo_entry

# trace order of block_width_figure; ArchExplorer updates the traces by these indices
CONTINUOUS, QUANTIZED, ADJUSTED = 0, 1, 2
TEMPLATE = "plotly_white"  # the default grey background drowns the stage bands
_BAND_COLORS = ("rgba(31, 119, 180, 0.10)", "rgba(255, 127, 14, 0.10)")
ROUNDING_LABELS = {"bankers": "banker's rounding (pycls, mmdet)", "half_up": "half-up rounding (torchvision)"}


@dataclass(frozen=True)
class WidthProfile:
    """Per-block and per-stage widths of one design-space point (d blocks, n stages)."""

    params: RegNetParams
    blocks: BlockWidths  # u_j, k_j, w_j: (d,) each
    stages: RegNetStages  # after the group-width adjustment

    @property
    def block_index(self) -> np.ndarray:
        """(d,) block numbers j."""
        return np.arange(self.params.depth)

    @property
    def adjusted(self) -> np.ndarray:
        """(d,) width of each block's stage after the group-width adjustment (the tensors' width)."""
        return np.repeat(self.stages.widths, self.stages.depths)

    @property
    def stage_bounds(self) -> list[tuple[int, int]]:
        """(first, last) block index of every stage."""
        ends = np.cumsum(self.stages.depths)
        return [(int(e - d), int(e - 1)) for e, d in zip(ends, self.stages.depths)]


def width_profile(params: RegNetParams, rounding: Rounding = "bankers") -> WidthProfile:
    """Block and stage widths of ``params`` (``rounding``: group adjustment of pycls/mmdet or torchvision)."""
    blocks = block_widths(params.depth, params.w0, params.wa, params.wm, params.q)
    return WidthProfile(params, blocks, generate_stages(params, rounding))


def _describe(params: RegNetParams) -> str:
    return f"d={params.depth}, w0={params.w0}, wa={params.wa:g}, wm={params.wm:g}, g={params.group_w}"


def _stage_labels(profile: WidthProfile) -> list[tuple[float, int, str]]:
    """(x, y, text) per stage: ``s1: 32×1`` (width × depth) centred above the stage's step."""
    st = profile.stages
    return [((first + last) / 2, st.widths[i], f"s{i + 1}: {st.widths[i]}×{st.depths[i]}")
            for i, (first, last) in enumerate(profile.stage_bounds)]


def _stage_bands(profile: WidthProfile) -> tuple[list[dict], list[dict]]:
    """Plotly layout shapes (one shaded band per stage) and annotations (the stage labels)."""
    shapes = [dict(type="rect", xref="x", yref="paper", x0=first - 0.5, x1=last + 0.5, y0=0, y1=1,
                   fillcolor=_BAND_COLORS[i % 2], line_width=0, layer="below")
              for i, (first, last) in enumerate(profile.stage_bounds)]
    labels = [dict(x=x, y=y, text=text, showarrow=False, yanchor="bottom", yshift=4, font=dict(size=11))
              for x, y, text in _stage_labels(profile)]
    return shapes, labels


def fill_block_width_figure(fig: go.Figure, profile: WidthProfile) -> None:
    """Write ``profile`` into the traces and layout of a :func:`block_width_figure` figure, in place.

    Works on a ``go.FigureWidget`` too (call it under ``fig.batch_update()`` for one redraw).
    """
    x = profile.block_index
    fig.data[CONTINUOUS].update(x=x, y=profile.blocks.continuous)
    fig.data[QUANTIZED].update(x=x, y=profile.blocks.quantized, customdata=profile.blocks.exponents)
    fig.data[ADJUSTED].update(x=x, y=profile.adjusted)
    shapes, labels = _stage_bands(profile)
    st = profile.stages
    fig.layout.shapes = shapes
    fig.layout.annotations = labels
    fig.layout.title.text = f"{_describe(profile.params)}<br>widths {list(st.widths)}, depths {list(st.depths)}"
    fig.layout.xaxis.range = [-0.5, profile.params.depth - 0.5]


def block_width_figure(params: RegNetParams, rounding: Rounding = "bankers") -> go.Figure:
    """Continuous ``u_j``, quantized ``w_j`` (steps) and adjusted stage widths per block, stages shaded.

    Three traces, in the order ``CONTINUOUS, QUANTIZED, ADJUSTED``; hovering a quantized point shows ``k_j``.
    """
    fig = go.Figure([
        go.Scatter(name="continuous u_j = w0 + wa·j", mode="lines", line=dict(dash="dot", color="gray")),
        go.Scatter(name="quantized w_j = q·round(w0·wm^k_j / q)", mode="lines+markers", line_shape="hvh",
                   line=dict(color="#1f77b4"), hovertemplate="block %{x}: w_j = %{y}, k_j = %{customdata}"),
        go.Scatter(name="stage width after group adjustment", mode="lines", line_shape="hvh",
                   line=dict(dash="dash", color="#d62728")),
    ])
    fig.update_layout(template=TEMPLATE, xaxis_title="block j", yaxis_title="width (channels)", height=450,
                      legend=dict(x=0.01, y=0.95, bgcolor="rgba(255,255,255,0.7)"), margin=dict(t=80))
    fill_block_width_figure(fig, width_profile(params, rounding))
    return fig


def stage_table(arch: Arch, rounding: Rounding = "bankers") -> pd.DataFrame:
    """One row per stage (:func:`~regnet_explore.regnet.report.stage_rows`): blocks, quantized width, adjusted
    width, depth, group width, groups, bottleneck width; ``layer`` is the stage's key prefix in the backbone.

    ``arch``: RegNetParams, zoo name, mmdet arch dict or RegNetStages (``quantized_w`` is empty for explicit
    stages, which carry no pre-adjustment widths).
    """
    table = pd.DataFrame(stage_rows(resolve_stages(arch, rounding)))
    table["quantized_w"] = pd.array(table["quantized_w"].tolist(), dtype="Int64")
    return table


def complexity_table(arch: Arch, rounding: Rounding = "bankers",
                     settings: tuple[BackboneInput, ...] = (IMAGENET, POINTPILLARS_NUS)) -> pd.DataFrame:
    """FLOPs (multiply-adds), parameters and activations of ``arch`` on each backbone input, pycls counting rules."""
    st = resolve_stages(arch, rounding)
    rows = []
    for s in settings:
        cx = s.measure(st)
        rows.append({"setting": s.label, "GFLOPs": cx["flops"] / 1e9, "params (M)": cx["params"] / 1e6,
                     "acts (M)": cx["acts"] / 1e6})
    return pd.DataFrame(rows)


def zoo_table() -> pd.DataFrame:
    """The 24 pycls zoo models: parameters, stages, our complexity, pycls's figures and top-1 error (%)."""
    return pd.DataFrame(zoo_rows())


def zoo_figure() -> go.Figure:
    """Top-1 error vs GFLOPs (log) of the zoo, one trace per family, marker area proportional to parameters."""
    df = zoo_table()
    fig = go.Figure()
    for (family, part), where in zip(df.groupby("family", sort=True), ("top center", "bottom center")):
        fig.add_trace(go.Scatter(
            name=family, x=part["GFLOPs"], y=part["top1_err"], mode="markers+text",
            text=[n.split("-")[1] for n in part["name"]], textposition=where, textfont=dict(size=10),
            marker=dict(size=np.sqrt(part["params (M)"]) * 3, sizemin=4, opacity=0.7),
            customdata=np.stack([part["name"], part["params (M)"]], axis=1),
            hovertemplate="%{customdata[0]}: %{x:.2f} GFLOPs, %{customdata[1]:.1f} M params, "
                          "top-1 error %{y:.2f} %"))
    fig.update_layout(template=TEMPLATE,
                      title="pycls RegNet zoo: ImageNet top-1 error vs FLOPs (marker area ∝ parameters)",
                      xaxis=dict(title="GFLOPs (224 px)", type="log"), yaxis_title="top-1 error (%)", height=450)
    return fig


@dataclass(frozen=True)
class PitfallProfiles:
    """A zoo model's exact width profile next to the one its rounded ``wa``/``wm`` give."""

    name: str
    exact: WidthProfile
    rounded: WidthProfile

    @property
    def changed_blocks(self) -> np.ndarray:
        """Indices of blocks whose tensor width differs (same depth d on both sides)."""
        return np.flatnonzero(self.exact.adjusted != self.rounded.adjusted)


def pitfall_profiles(name: str, decimals: int = 1) -> PitfallProfiles:
    """Exact and paper-rounded (``decimals`` places for ``wa``, ``wm``) profiles of zoo model ``name``."""
    entry = zoo_entry(name)
    return PitfallProfiles(entry.name, width_profile(entry.params), width_profile(paper_rounded(entry.params,
                                                                                               decimals)))


def _stages_text(st: RegNetStages) -> str:
    return f"widths {list(st.widths)}, depths {list(st.depths)}"


def _changed_label(changed: np.ndarray) -> str:
    return f"{len(changed)} block{'' if len(changed) == 1 else 's'} change{'s' if len(changed) == 1 else ''} width"


def pitfall_figure(name: str, decimals: int = 1) -> go.Figure:
    """Per-block tensor widths of zoo model ``name``: exact parameters vs ``wa``/``wm`` rounded as printed.

    Traces: exact, rounded (steps, exact stages shaded), and markers on the blocks whose width changes.
    """
    pp = pitfall_profiles(name, decimals)
    x = pp.exact.block_index
    ex, ro = pp.exact.params, pp.rounded.params
    changed = pp.changed_blocks
    fig = go.Figure([
        go.Scatter(name=f"exact wa={ex.wa:g}, wm={ex.wm:g}", x=x, y=pp.exact.adjusted, mode="lines+markers",
                   line_shape="hvh", line=dict(color="#1f77b4")),
        go.Scatter(name=f"rounded wa={ro.wa:g}, wm={ro.wm:g}", x=x, y=pp.rounded.adjusted, mode="lines+markers",
                   line_shape="hvh", line=dict(dash="dash", color="#d62728")),
        go.Scatter(name=_changed_label(changed), x=changed, y=pp.rounded.adjusted[changed],
                   mode="markers", marker=dict(symbol="x", size=12, color="black")),
    ])
    shapes, labels = _stage_bands(pp.exact)
    fig.update_layout(
        template=TEMPLATE, shapes=shapes, annotations=labels, height=450,
        xaxis=dict(title="block j", range=[-0.5, ex.depth - 0.5]),
        yaxis_title="width after group adjustment (channels)", margin=dict(t=100),
        legend=dict(x=0.01, y=0.95, bgcolor="rgba(255,255,255,0.7)"),
        title=dict(text=f"{pp.name}: exact {_stages_text(pp.exact.stages)}<br>"
                        f"rounded {_stages_text(pp.rounded.stages)}", font=dict(size=13)))
    return fig


def pitfall_frame(decimals: int = 1, family: str = "RegNetX") -> pd.DataFrame:
    """Every zoo model of ``family``: exact vs rounded stages, how many backbone keys differ, FPN in_channels
    (the columns: :func:`~regnet_explore.regnet.report.pitfall_rows`)."""
    return pd.DataFrame(pitfall_rows(decimals, family))


def pitfall_view(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`pitfall_frame` for reading in a notebook panel: one short text column per comparison (stages as
    ``width×depth``, exact -> rounded), so that no cell holds a list and the table fits about 900 px."""
    def stages(widths, depths) -> str:
        return " ".join(f"{w}×{d}" for w, d in zip(widths, depths))

    def fpn(value) -> str:
        return "-".join(map(str, value)) if isinstance(value, list) else str(value).split(":")[0]

    return pd.DataFrame({
        "model": frame["name"].str.replace("RegNetX-", "", regex=False),
        "wa → figure": [f"{a:g} → {b:g}" for a, b in zip(frame["wa"], frame["wa_rounded"])],
        "wm → figure": [f"{a:g} → {b:g}" for a, b in zip(frame["wm"], frame["wm_rounded"])],
        "stages (width×depth)": [stages(w, d) for w, d in zip(frame["widths"], frame["depths"])],
        "from the figure's values": [stages(w, d) for w, d in zip(frame["widths_rounded"], frame["depths_rounded"])],
        "keys differing": frame["key_diffs"],
        "FPN in_channels": [f"{fpn(a)} → {fpn(b)}" for a, b in zip(frame["fpn_in_channels"],
                                                                  frame["fpn_in_channels_rounded"])],
    }).set_index("model")


def rounding_frame(family: str | None = None) -> pd.DataFrame:
    """Zoo stage widths with banker's (pycls, mmdet, timm) vs half-up (torchvision) group-width rounding."""
    return pd.DataFrame(rounding_rows(family))
