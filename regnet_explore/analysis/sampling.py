"""Draw networks from the paper's design spaces, seeded and reproducible (Radosavovic et al. 2020, pycls ``sweep``).

Spaces (``num_stages`` stages, 4 by default; every choice uniform unless said otherwise):

- ``anynetxa`` (section 3.1): per stage depth d_i in 1..16, width w_i in 8..1024 (multiple of 8), bottleneck ratio
  b_i in {1, 2, 4} (pycls ``bot_mul`` = 1 / b) and group width g_i in {1, 2, 4, 8, 16, 32}, all independent.
- ``anynetxb``: one b shared by all stages; ``anynetxc``: one b and one g shared; ``anynetxd``: Xc with
  w_{i+1} >= w_i; ``anynetxe``: Xd with d_{i+1} >= d_i. Monotone sequences are drawn uniformly among all
  non-decreasing ones (uniform over the restricted space, unlike sorting independent draws).
- ``regnetx`` (section 3.3): depth d in 12..28 (pycls ``REGNET_SAMPLER`` default; the paper's first RegNet space
  allows d < 64), w0 log-uniform in [8, 256] rounded to a multiple of 8, wa log-uniform in [8, 256] rounded to 0.1,
  wm log-uniform in [1.5, 3] rounded to 0.001 (the paper's range; pycls's sweep default is [2, 3]), b = 1 and g in
  {1, 2, 4, 8, 16, 32}; ``regnety``: the same plus squeeze-excitation (``se_ratio`` 0.25).

Group widths: every space goes through :func:`design.adjust_widths_groups` (pycls/mmdet: g clipped to the bottleneck
width, bottleneck width rounded to a multiple of g). For AnyNet that keeps widths multiples of 8 and <= 1024, and
non-decreasing widths non-decreasing (same rounding for every stage).

Rejections, counted per reason in :class:`SampleReport`: ``stages`` (a RegNet whose widths form another number of
stages than ``num_stages``, or skip an exponent: pycls's ``num_stages != total_stages``), ``flops_low/high`` and
``params_low/high`` (outside the window, measured on a :class:`BackboneInput`) and ``duplicate`` (a network
already accepted in this call). Draw i uses ``np.random.default_rng([seed, i])`` alone and draws are accepted in
order, so ``sample_space(space, k, seed)`` is a prefix of ``sample_space(space, n, seed)`` for k <= n; ``regnetx``
and ``regnety`` with the same seed draw the same widths and depths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from regnet_explore.detection.configs import DetectorConfig, RegNetBackboneConfig
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import regnet_complexity
from regnet_explore.regnet.design import (
    REGNET_DEPTH,
    REGNET_W0,
    REGNET_WA,
    REGNET_WM,
    RegNetParams,
    RegNetStages,
    adjust_widths_groups,
    block_widths,
    generate_stages,
)

SPACES: tuple[str, ...] = ("regnetx", "regnety", "anynetxa", "anynetxb", "anynetxc", "anynetxd", "anynetxe")
REJECT_REASONS: tuple[str, ...] = ("stages", "flops_low", "flops_high", "params_low", "params_high", "duplicate")

ANYNET_DEPTHS = tuple(range(1, 17))
ANYNET_WIDTHS = tuple(range(8, 1025, 8))
ANYNET_BOTTLENECKS = (1, 2, 4)  # the paper's b; the block's bot_mul is 1 / b
GROUP_WIDTHS = (1, 2, 4, 8, 16, 32)
REGNETY_SE_RATIO = 0.25

# space: (shared b, shared g, non-decreasing widths, non-decreasing depths)
_ANYNET_RULES = {
    "anynetxa": (False, False, False, False),
    "anynetxb": (True, False, False, False),
    "anynetxc": (True, True, False, False),
    "anynetxd": (True, True, True, False),
    "anynetxe": (True, True, True, True),
}


@dataclass(frozen=True)
class BackboneInput:
    """What a design-space network is costed on (the arguments of :func:`backbone.regnet_complexity`): the input map
    (``height`` x ``width``, ``in_channels``; ``width=None``: square), the stem, the stage strides and the classifier
    (``num_classes`` 0: none); ``label`` names it in tables and is not compared.

    The defaults are pycls's ImageNet network: 224 px RGB, 32-channel stem, stride 2 in every stage, 1000 classes.
    ``strides`` are those of the first stages; any further stage strides 2 (``None``: 2 in every stage).
    """

    label: str = field(default="ImageNet classifier (pycls, 224 px)", compare=False)
    height: int = 224
    width: int | None = None
    in_channels: int = 3
    stem_channels: int = 32
    stem: bool = True
    strides: tuple[int, ...] | None = None
    num_classes: int = 1000

    @classmethod
    def of_detector(cls, det: DetectorConfig, height: int | None = None, width: int | None = None) -> BackboneInput:
        """The RegNet backbone's input in ``det``: no stem, the pillar canvas on its BEV grid (or ``height`` x
        ``width``), the detector's strides, no classifier."""
        backbone = det.backbone
        if not isinstance(backbone, RegNetBackboneConfig):
            raise RegNetExploreError(f"{det.name} has a {backbone.label} backbone; design-space networks go into "
                                     "a RegNet config")
        ny, nx = det.bev_shape
        height, width, channels = height or ny, width or nx, backbone.stem_channels
        return cls(f"PointPillars {det.alias} BEV {height}×{width} (no stem, {channels} ch)", height, width, channels,
                   channels, False, tuple(backbone.strides), 0)

    def stage_strides(self, num_stages: int) -> tuple[int, ...]:
        """The stride of each of ``num_stages`` stages."""
        given = self.strides or ()
        return tuple(given[:num_stages]) + (2,) * (num_stages - len(given))

    def measure(self, stages: RegNetStages) -> dict[str, int]:
        """{'flops', 'params', 'acts'} of the backbone ``stages`` builds, on this input."""
        return regnet_complexity(stages, self.height, self.width, self.in_channels, self.stem_channels, self.stem,
                                 self.stage_strides(stages.num_stages), None, self.num_classes)


IMAGENET = BackboneInput()
# mmdet3d PointPillars on nuScenes: NoStemRegNet fed the 400 x 400 pillar canvas of 64 channels, strides (1, 2, 2, 2)
POINTPILLARS_NUS = BackboneInput("PointPillars nuScenes BEV 400×400 (no stem, 64 ch)", height=400, width=400,
                                 in_channels=64, stem_channels=64, stem=False, strides=(1, 2, 2, 2), num_classes=0)


@dataclass(frozen=True)
class SampledNet:
    """One accepted network of a design space."""

    space: str
    index: int  # position in the seeded stream of accepted samples
    stages: RegNetStages  # what the backbone builds: RegNet(arch=stages, ...)
    params: dict  # RegNet: depth, w0, wa, wm, group_w, bot_mul (+ se_ratio); AnyNet: per-stage lists as drawn
    flops: int
    params_count: int
    acts: int

    def to_dict(self) -> dict:
        """A flat JSON-able row: space, index, the drawn parameters, the built stages and the complexity."""
        st = self.stages
        row = {"space": self.space, "index": self.index}
        row.update({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in self.params.items()})
        row.update(stage_widths=list(st.widths), stage_depths=list(st.depths), stage_group_widths=list(st.group_widths),
                   stage_bot_muls=list(st.bot_muls), stage_pre_adjust_widths=list(st.pre_adjust_widths or st.widths),
                   se_ratio=st.se_ratio, flops=self.flops,
                   params_count=self.params_count, acts=self.acts)
        return row


@dataclass
class SampleReport:
    """The accepted samples and what it took: ``drawn == len(samples) + sum(rejected.values())``."""

    samples: list[SampledNet]
    drawn: int
    rejected: dict[str, int]  # reason (REJECT_REASONS) -> count


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _pick(rng: np.random.Generator, values: tuple, n: int) -> list:
    return [values[i] for i in rng.integers(len(values), size=n)]


def _pick_nondecreasing(rng: np.random.Generator, values: tuple, n: int) -> list:
    """Uniform among the non-decreasing length-n sequences over sorted ``values`` (stars and bars: n distinct slots
    out of len + n - 1, shifted back by their rank)."""
    slots = np.sort(rng.choice(len(values) + n - 1, size=n, replace=False)) - np.arange(n)
    return [values[i] for i in slots]


def _draw_regnet(rng: np.random.Generator, se_ratio: float | None, num_stages: int) -> tuple[RegNetStages, dict] | None:
    """One RegNet draw: (stages, params), or None when its widths do not form ``num_stages`` stages."""
    params = dict(depth=int(rng.integers(REGNET_DEPTH[0], REGNET_DEPTH[1] + 1)),
                  w0=min(max(8 * round(_log_uniform(rng, *REGNET_W0) / 8), REGNET_W0[0]), REGNET_W0[1]),
                  wa=round(_log_uniform(rng, *REGNET_WA), 1), wm=round(_log_uniform(rng, *REGNET_WM), 3),
                  group_w=_pick(rng, GROUP_WIDTHS, 1)[0], bot_mul=1.0)
    if se_ratio is not None:
        params["se_ratio"] = se_ratio
    blocks = block_widths(params["depth"], params["w0"], params["wa"], params["wm"])
    if not blocks.num_stages == blocks.total_stages == num_stages:
        return None
    return generate_stages(RegNetParams(**params)), params


def _draw_anynet(rng: np.random.Generator, space: str, num_stages: int) -> tuple[RegNetStages, dict]:
    shared_b, shared_g, inc_w, inc_d = _ANYNET_RULES[space]
    n = num_stages
    depths = (_pick_nondecreasing if inc_d else _pick)(rng, ANYNET_DEPTHS, n)
    widths = (_pick_nondecreasing if inc_w else _pick)(rng, ANYNET_WIDTHS, n)
    bottlenecks = _pick(rng, ANYNET_BOTTLENECKS, 1) * n if shared_b else _pick(rng, ANYNET_BOTTLENECKS, n)
    group_ws = _pick(rng, GROUP_WIDTHS, 1) * n if shared_g else _pick(rng, GROUP_WIDTHS, n)
    bot_muls = [1 / b for b in bottlenecks]
    adj_widths, adj_groups = adjust_widths_groups(widths, bot_muls, group_ws)
    stages = RegNetStages(tuple(adj_widths), tuple(depths), tuple(adj_groups), tuple(bot_muls),
                          pre_adjust_widths=tuple(widths))
    return stages, dict(depths=depths, widths=widths, bot_muls=bot_muls, group_widths=group_ws)


def _draw(rng: np.random.Generator, space: str, num_stages: int) -> tuple[RegNetStages, dict] | None:
    if space == "regnetx":
        return _draw_regnet(rng, None, num_stages)
    if space == "regnety":
        return _draw_regnet(rng, REGNETY_SE_RATIO, num_stages)
    return _draw_anynet(rng, space, num_stages)


def _check_window(name: str, window: tuple[float, float] | None) -> None:
    if window is None:
        return
    ok = isinstance(window, (tuple, list)) and len(window) == 2
    ok = ok and all(isinstance(v, (int, float)) and math.isfinite(v) for v in window) and 0 <= window[0] <= window[1]
    if not ok:
        raise RegNetExploreError(f"{name} window {window!r} is empty or invalid: give (low, high) with "
                                 f"0 <= low <= high, e.g. {name}=(3.6e8, 4.0e8)")


def _window_reason(name: str, value: int, window: tuple[float, float] | None) -> str | None:
    if window is None:
        return None
    if value < window[0]:
        return f"{name}_low"
    if value > window[1]:
        return f"{name}_high"
    return None


def sample_space(space: str, n: int, seed: int = 0, *, flops: tuple[float, float] | None = None,
                 params: tuple[float, float] | None = None, num_stages: int = 4, probe: BackboneInput | None = None,
                 max_draws: int | None = None) -> SampleReport:
    """The first ``n`` networks of ``space`` accepted from the stream seeded by ``seed``.

    ``flops`` / ``params``: inclusive (low, high) windows measured on ``probe`` (default :data:`IMAGENET`).
    ``max_draws`` (default 10,000 + 1,000 n) bounds the draws; running out raises with the rejection counts.
    """
    if space not in SPACES:
        raise RegNetExploreError(f"unknown design space {space!r}: use one of {', '.join(SPACES)}")
    for name, value, least in (("n", n, 0), ("seed", seed, 0), ("num_stages", num_stages, 1)):
        if not (isinstance(value, int) and value >= least):
            raise RegNetExploreError(f"{name} must be an integer >= {least}, got {value!r}")
    _check_window("flops", flops)
    _check_window("params", params)
    probe = probe or IMAGENET
    if probe.strides is not None and len(probe.strides) != num_stages:
        raise RegNetExploreError(f"the backbone input has {len(probe.strides)} strides but the sampled networks have "
                                 f"{num_stages} stages: give one stride per stage (or num_stages={len(probe.strides)})")
    limit = 10_000 + 1_000 * n if max_draws is None else max_draws
    report = SampleReport(samples=[], drawn=0, rejected=dict.fromkeys(REJECT_REASONS, 0))
    seen: set[RegNetStages] = set()
    while len(report.samples) < n:
        if report.drawn >= limit:
            counts = ", ".join(f"{k} {v}" for k, v in report.rejected.items() if v)
            raise RegNetExploreError(f"{space}: only {len(report.samples)} of {n} networks accepted in {limit} draws "
                                     f"(rejected: {counts or 'none'}): widen the flops/params window or raise "
                                     "max_draws")
        drawn = _draw(np.random.default_rng([seed, report.drawn]), space, num_stages)
        report.drawn += 1
        if drawn is None:
            report.rejected["stages"] += 1
            continue
        stages, drawn_params = drawn
        cx = probe.measure(stages)
        reason = (_window_reason("flops", cx["flops"], flops) or _window_reason("params", cx["params"], params)
                  or ("duplicate" if stages in seen else None))
        if reason:
            report.rejected[reason] += 1
            continue
        seen.add(stages)
        report.samples.append(SampledNet(space, len(report.samples), stages, drawn_params, cx["flops"], cx["params"],
                                         cx["acts"]))
    return report
