"""The RegNet design space: six numbers to per-block and per-stage widths.

Follows pycls ``generate_regnet`` and mmdet ``RegNet.generate_regnet`` / ``adjust_width_group`` exactly:

1. continuous widths ``u_j = w0 + wa * j``;
2. exponents ``k_j = round(log(u_j / w0) / log(wm))`` (numpy round, half to even);
3. quantized widths ``w_j = round(w0 * wm**k_j / q) * q``;
4. runs of equal ``w_j`` form the stages;
5. per stage, the bottleneck width is made a multiple of the group width (banker's rounding, as pycls and
   mmdet; ``rounding="half_up"`` gives torchvision's variant, which makes RegNetX-400MF end 400 wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from regnet_explore.errors import RegNetExploreError

Rounding = Literal["bankers", "half_up"]


@dataclass(frozen=True)
class RegNetParams:
    """A point of the RegNet design space (pycls REGNET.* / mmdet ``arch`` dict).

    ``se_ratio`` is None for RegNetX and 0.25 for RegNetY; ``q`` is the width quantum (8 in every zoo model).
    """

    depth: int
    w0: int
    wa: float
    wm: float
    group_w: int
    bot_mul: float = 1.0
    se_ratio: float | None = None
    q: int = 8

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.depth, int) and self.depth >= 1):
            problems.append(f"depth must be a positive integer, got {self.depth!r}")
        if not self.wa >= 0:
            problems.append(f"wa must be >= 0, got {self.wa}")
        if not self.w0 > 0:
            problems.append(f"w0 must be > 0, got {self.w0}")
        if not self.wm > 1:
            problems.append(f"wm must be > 1, got {self.wm}")
        if self.q < 1 or self.w0 % self.q != 0:
            problems.append(f"w0 must be a multiple of q={self.q}, got {self.w0}")
        if not self.group_w >= 1:
            problems.append(f"group_w must be >= 1, got {self.group_w}")
        if not self.bot_mul > 0:
            problems.append(f"bot_mul must be > 0, got {self.bot_mul}")
        if problems:
            raise RegNetExploreError("invalid RegNet parameters: " + "; ".join(problems))

    def as_mmdet_arch(self) -> dict:
        """The ``arch`` dict of an mmdet/mmdet3d config."""
        return dict(w0=self.w0, wa=self.wa, wm=self.wm, group_w=self.group_w, depth=self.depth,
                    bot_mul=self.bot_mul)


@dataclass(frozen=True)
class BlockWidths:
    """Per-block widths before the group adjustment (step 1-3 of the module docstring)."""

    continuous: np.ndarray  # u_j, float
    exponents: np.ndarray  # k_j, int
    quantized: np.ndarray  # w_j, int, multiples of q
    total_stages: int  # max(k) + 1, pycls's "total_stages" (stages that could exist, some empty)

    @property
    def num_stages(self) -> int:
        return len(np.unique(self.quantized))


@dataclass(frozen=True)
class RegNetStages:
    """Per-stage description of a built network: what the backbone consumes."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    group_widths: tuple[int, ...]
    bot_muls: tuple[float, ...]
    se_ratio: float | None = None
    pre_adjust_widths: tuple[int, ...] = field(default=(), compare=False)

    @property
    def num_stages(self) -> int:
        return len(self.widths)

    @property
    def bottleneck_widths(self) -> tuple[int, ...]:
        return tuple(int(round(w * b)) for w, b in zip(self.widths, self.bot_muls))

    @property
    def groups(self) -> tuple[int, ...]:
        return tuple(wb // g for wb, g in zip(self.bottleneck_widths, self.group_widths))

    @property
    def depth(self) -> int:
        return sum(self.depths)


def block_widths(depth: int, w0: int, wa: float, wm: float, q: int = 8) -> BlockWidths:
    """Continuous, exponent and quantized per-block widths (pycls ``generate_regnet``)."""
    u = np.arange(depth) * wa + w0
    k = np.round(np.log(u / w0) / np.log(wm))
    w = np.round(w0 * np.power(wm, k) / q) * q
    return BlockWidths(continuous=u, exponents=k.astype(int), quantized=w.astype(int),
                       total_stages=int(k.max()) + 1)


def stages_from_blocks(widths: np.ndarray | list[int]) -> tuple[list[int], list[int]]:
    """Runs of equal consecutive block widths -> (stage widths, stage depths)."""
    widths = [int(w) for w in widths]
    stage_w: list[int] = []
    stage_d: list[int] = []
    for w in widths:
        if stage_w and stage_w[-1] == w:
            stage_d[-1] += 1
        else:
            stage_w.append(w)
            stage_d.append(1)
    return stage_w, stage_d


def _round_to_multiple(value: float, multiple: int, rounding: Rounding) -> int:
    if rounding == "bankers":  # Python 3 round(): pycls, mmdet, timm
        return int(round(value / multiple) * multiple)
    if rounding == "half_up":  # torchvision _make_divisible
        new = max(multiple, int(value + multiple / 2) // multiple * multiple)
        return new + multiple if new < 0.9 * value else new
    raise RegNetExploreError(f"unknown rounding {rounding!r}: use 'bankers' (pycls/mmdet) or 'half_up' (torchvision)")


def adjust_widths_groups(widths: list[int], bot_muls: list[float], group_widths: list[int],
                         rounding: Rounding = "bankers") -> tuple[list[int], list[int]]:
    """Make each stage's bottleneck width a multiple of its (clipped) group width.

    Returns the adjusted stage widths and group widths (mmdet ``adjust_width_group``).
    """
    w_bot = [int(w * b) for w, b in zip(widths, bot_muls)]
    groups = [min(g, wb) for g, wb in zip(group_widths, w_bot)]
    w_bot = [_round_to_multiple(wb, g, rounding) for wb, g in zip(w_bot, groups)]
    return [int(wb / b) for wb, b in zip(w_bot, bot_muls)], groups


def generate_stages(params: RegNetParams, rounding: Rounding = "bankers") -> RegNetStages:
    """The per-stage network that ``params`` builds (what pycls and mmdet build)."""
    blocks = block_widths(params.depth, params.w0, params.wa, params.wm, params.q)
    widths, depths = stages_from_blocks(blocks.quantized)
    n = len(widths)
    adj_widths, group_ws = adjust_widths_groups(widths, [params.bot_mul] * n, [params.group_w] * n, rounding)
    return RegNetStages(widths=tuple(adj_widths), depths=tuple(depths), group_widths=tuple(group_ws),
                        bot_muls=(params.bot_mul,) * n, se_ratio=params.se_ratio,
                        pre_adjust_widths=tuple(widths))


# The paper's RegNet design space (section 4; AnyNetX_E's ranges): the one place these numbers are written; the
# sampler (analysis.sampling) and the width fit (analysis.fit) read them from here.
REGNET_DEPTH = (12, 28)
REGNET_W0 = (8, 256)
REGNET_WA = (8.0, 256.0)
REGNET_WM = (1.5, 3.0)


def design_space_violations(params: RegNetParams) -> list[str]:
    """Where ``params`` leaves the paper's RegNetX design space (empty list: inside).

    Ranges of the paper's AnyNetX_E / RegNet sampling: d <= 28 (12..28 in the refined space), w0 and wa in
    [8, 256], wm in [1.5, 3] (>= 2 for the refined RegNetX), b = 1, g in [1, 32] (powers of two in the
    sampler; zoo models use larger, e.g. 120), and 4 stages for the standard ImageNet network.
    """
    out = []
    for name, (low, high) in (("depth", REGNET_DEPTH), ("w0", REGNET_W0), ("wa", REGNET_WA), ("wm", REGNET_WM)):
        if not low <= getattr(params, name) <= high:
            out.append(f"{name} {getattr(params, name)} outside {low:g}..{high:g}")
    if REGNET_WM[0] <= params.wm < 2:
        out.append(f"wm {params.wm} < 2 (refined RegNetX uses wm >= 2)")
    if params.bot_mul != 1:
        out.append(f"bot_mul {params.bot_mul} != 1 (RegNetX fixes b = 1)")
    n = generate_stages(params).num_stages
    if n != 4:
        out.append(f"{n} stages instead of 4")
    return out

