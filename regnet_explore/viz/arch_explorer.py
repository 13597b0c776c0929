"""An ipywidgets explorer of the RegNet design space: sliders and a zoo dropdown over a live width plot.

The figure is a ``plotly.graph_objects.Figure`` built once by :func:`block_width_figure`; every change rewrites
its trace data and stage bands in place and shows it again in an ``Output`` widget. A static figure there is saved
as its JSON (kilobytes) and drawn by JupyterLab's plotly renderer at the cell's width; a ``FigureWidget`` would
store plotly.js (5 MB) in the widget state and keep the 700 px it measures before it is attached. The callbacks
are plain methods, so the explorer is driven and tested without a browser: set a slider's ``.value`` (or call
:meth:`set_params`) and read ``explorer.figure`` / ``explorer.table.value``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import clear_output, display

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.design import RegNetParams, Rounding, design_space_violations
from regnet_explore.regnet.zoo import ZOO, zoo_params
from regnet_explore.viz.design_space import (
    ROUNDING_LABELS,
    block_width_figure,
    complexity_table,
    fill_block_width_figure,
    stage_table,
    width_profile,
)

CUSTOM = "(custom)"
_SE_RATIO = 0.25  # every zoo RegNetY


def _sliders() -> dict[str, widgets.ValueWidget]:
    """Ranges reach past the paper's design space so that leaving it can be seen (and is flagged)."""
    style = dict(description_width="60px")
    layout = widgets.Layout(width="420px")
    return {
        "depth": widgets.IntSlider(min=1, max=40, description="depth d", style=style, layout=layout),
        "w0": widgets.IntSlider(min=8, max=512, step=8, description="w0", style=style, layout=layout),
        "wa": widgets.FloatSlider(min=0, max=256, step=0.01, description="wa", style=style, layout=layout),
        "wm": widgets.FloatSlider(min=1.05, max=4, step=0.01, description="wm", style=style, layout=layout),
        "group_w": widgets.IntSlider(min=1, max=256, description="group_w", style=style, layout=layout),
        "bot_mul": widgets.FloatSlider(min=0.25, max=4, step=0.25, description="bot_mul", style=style,
                                       layout=layout),
    }


def zoo_name_of(params: RegNetParams) -> str | None:
    """The zoo model with exactly these parameters, if any."""
    return next((name for name, e in ZOO.items() if e.params == params), None)


class ArchExplorer:
    """Sliders for ``depth, w0, wa, wm, group_w, bot_mul``, an SE switch, a zoo dropdown and a rounding toggle.

    Shows the per-block width plot, the stage table, FLOPs/params (ImageNet and the PointPillars BEV setting)
    and a warning line listing where the parameters leave the RegNetX design space. Display it as the last
    expression of a notebook cell (or ``display(explorer.widget)``).
    """

    def __init__(self, arch: str | RegNetParams = "RegNetX-400MF", rounding: Rounding = "bankers"):
        params = zoo_params(arch) if isinstance(arch, str) else arch
        self.sliders = _sliders()
        self.se = widgets.Checkbox(description="SE (RegNetY)", indent=False)
        self.zoo = widgets.Dropdown(options=[CUSTOM, *ZOO], description="zoo")
        self.rounding = widgets.ToggleButtons(options=[(label, key) for key, label in ROUNDING_LABELS.items()],
                                              value=rounding, description="rounding",
                                              style={"button_width": "auto"})  # labels whole, not cut at 148 px
        self.figure = block_width_figure(params, rounding)
        self.plot = widgets.Output(layout=widgets.Layout(width="100%"))
        self.table = widgets.HTML()
        self.complexity = widgets.HTML()
        self.warning = widgets.HTML()
        self.problems: list[str] = []  # what the warning line lists (plain text: `status`)
        self._updating = False
        self.set_params(params)
        for w in (*self.sliders.values(), self.se, self.rounding):
            w.observe(self.on_change, names="value")
        self.zoo.observe(self.on_zoo, names="value")
        # a typed value for the continuous parameters: a pixel of the slider is too coarse for 2.54 -> 2.5
        self.texts = {key: widgets.BoundedFloatText(min=self.sliders[key].min, max=self.sliders[key].max, step=0.01,
                                                    layout=widgets.Layout(width="90px")) for key in ("wa", "wm")}
        for key, text in self.texts.items():
            widgets.link((self.sliders[key], "value"), (text, "value"))
        rows = [widgets.HBox([slider, self.texts[key]]) if key in self.texts else slider
                for key, slider in self.sliders.items()]
        self.widget = widgets.VBox([
            widgets.HBox([widgets.VBox(rows), widgets.VBox([self.zoo, self.se, self.rounding])]),
            self.warning, self.plot,
            widgets.Box([self.table, self.complexity], layout=widgets.Layout(flex_flow="row wrap")),  # no clipping
        ])

    @property
    def params(self) -> RegNetParams:
        """The slider values as parameters (raises RegNetExploreError for an invalid combination)."""
        v = {k: s.value for k, s in self.sliders.items()}
        return RegNetParams(depth=v["depth"], w0=v["w0"], wa=round(v["wa"], 2), wm=round(v["wm"], 2),
                            group_w=v["group_w"], bot_mul=v["bot_mul"], se_ratio=_SE_RATIO if self.se.value else None)

    def set_params(self, params: RegNetParams) -> None:
        """Move every slider to ``params`` and redraw once."""
        self._updating = True
        try:
            for key, slider in self.sliders.items():
                slider.value = getattr(params, key)
            self.se.value = params.se_ratio is not None
        finally:
            self._updating = False
        self.on_change()

    def on_zoo(self, change: dict) -> None:
        """Dropdown callback: a zoo name sets the sliders to that model."""
        if not self._updating and change["new"] != CUSTOM:
            self.set_params(zoo_params(change["new"]))

    def on_change(self, change: dict | None = None) -> None:
        """Slider/toggle callback: redraw the figure in place, refill the tables and the warning line."""
        if self._updating:
            return
        try:
            params = self.params
        except RegNetExploreError as e:
            self.problems = [str(e)]
            self.warning.value = f"<b style='color:#b00'>{html.escape(str(e))}</b>"
            return
        self._updating = True
        try:
            self.zoo.value = zoo_name_of(params) or CUSTOM
        finally:
            self._updating = False
        rounding = self.rounding.value
        fill_block_width_figure(self.figure, width_profile(params, rounding))
        with self.plot:
            clear_output(wait=True)
            display(self.figure)
        self.table.value = stage_table(params, rounding).to_html(index=False)
        self.complexity.value = complexity_table(params, rounding).to_html(index=False, float_format="{:.3f}".format)
        self.problems = design_space_violations(params) + (["SE on: a RegNetY, not a RegNetX"] if params.se_ratio
                                                            else [])
        self.warning.value = self._warning_html(self.problems)

    @property
    def status(self) -> str:
        """The warning line as plain text (the widget shows it as HTML)."""
        return "outside the RegNetX design space: " + "; ".join(self.problems) if self.problems else \
            "inside the RegNetX design space"

    @staticmethod
    def _warning_html(problems: list[str]) -> str:
        if not problems:
            return "<span style='color:#070'>inside the RegNetX design space</span>"
        return ("<b style='color:#b00'>outside the RegNetX design space:</b> "
                + html.escape("; ".join(problems)))

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
