"""Fit the RegNet width parameters (w0, wa, wm) to a network's per-block widths (paper section 3.3).

Radosavovic et al. (2020) fix d to the network's depth and grid-search w0, wa and wm to minimise e_fit, "the mean
log-ratio of predicted to observed per-block widths". A signed mean would let too wide and too narrow blocks cancel,
so this module takes the mean absolute log-ratio (natural log)::

    e_fit = mean_j |ln(w_hat_j / w_j)|,   j = 0 .. d-1,

where ``w_hat_j`` are the quantized widths of :func:`design.block_widths` (before the group adjustment). ``e_fit = 0``
means the RegNet generates exactly the given widths.

Search: ``w0`` over the multiples of q within 3q of the first block width (the first predicted block is always w0);
``wm`` over a log-spaced grid of the paper's RegNet range [1.5, 3], refined twice around the best cells; ``wa`` is not
gridded: for fixed (w0, wm) the error is piecewise constant in wa and only changes where a block crosses into the next
stage (``w0 + wa * j = w0 * wm**(k + 1/2)``), so every piece is scored exactly with one sorted cumulative sum. The best
candidates are re-scored with ``block_widths`` itself, and wa/wm are reported with the fewest decimals that keep the
error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.regnet.convert import backbone_state, infer_arch
from regnet_explore.regnet.design import REGNET_WM, RegNetParams, RegNetStages, block_widths

_W0_STEPS = 3  # w0 candidates: first width +- 3q
_COARSE = 256  # wm grid points over REGNET_WM
_FINE = 48  # wm points per refined cell
_TOP = 8  # cells refined per round, and candidates re-scored exactly at the end
_ROUNDS = 2


@dataclass(frozen=True)
class WidthFit:
    """The RegNet width parameters closest to a width sequence, and how close they are."""

    w0: int
    wa: float
    wm: float
    depth: int
    q: int
    fit_error: float  # e_fit of the quantized prediction (module docstring)
    widths: tuple[int, ...]  # the quantized per-block widths (w0, wa, wm) generate

    def params(self, group_w: int, bot_mul: float = 1.0, se_ratio: float | None = None) -> RegNetParams:
        """A full design-space point: the fitted widths plus the given block settings."""
        return RegNetParams(depth=self.depth, w0=self.w0, wa=self.wa, wm=self.wm, group_w=group_w, bot_mul=bot_mul,
                            se_ratio=se_ratio, q=self.q)


def fit_error(predicted: Sequence[int], observed: Sequence[int]) -> float:
    """e_fit: mean absolute natural log-ratio of predicted to observed per-block widths."""
    return float(np.mean(np.abs(np.log(np.asarray(predicted, float) / np.asarray(observed, float)))))


def _best_wa(w0: np.ndarray, wm: np.ndarray, log_w: np.ndarray, q: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """For P candidates (w0, wm), shapes (P,): the best wa and its e_fit, both (P,), over every piece of wa."""
    p, d = w0.size, log_w.size
    k = np.arange(levels, dtype=float)
    stage_w = np.round(w0[:, None] * np.power(wm[:, None], k) / q) * q  # (P, K): width of exponent k
    cost = np.abs(np.log(stage_w)[:, None, :] - log_w[None, :, None])  # (P, d, K): block j at exponent k
    base = cost[:, :, 0].sum(1)  # wa below every threshold: all blocks at w0
    if d == 1:
        return np.zeros(p), base
    j = np.arange(1, d, dtype=float)
    # wa at which block j (>= 1; block 0 is always w0) moves from exponent k to k + 1
    thresholds = (w0[:, None] * (np.power(wm[:, None], k[:-1] + 0.5) - 1))[:, None, :] / j[None, :, None]
    delta = np.diff(cost[:, 1:, :], axis=2)
    order = np.argsort(thresholds.reshape(p, -1), axis=1, kind="stable")
    t = np.take_along_axis(thresholds.reshape(p, -1), order, 1)
    steps = np.take_along_axis(delta.reshape(p, -1), order, 1)  # error change as each threshold is passed
    err = base[:, None] + np.concatenate([np.zeros((p, 1)), np.cumsum(steps, 1)], 1)  # piece i: (t[i-1], t[i])
    lo = np.concatenate([np.zeros((p, 1)), t], 1)
    hi = np.concatenate([t, np.full((p, 1), np.inf)], 1)
    # past `cap` the last block would need an exponent beyond the K modelled; pieces of ~zero width are float noise
    cap = w0 * (wm ** (levels - 0.5) - 1) / (d - 1)
    valid = (hi > lo * (1 + 1e-9)) & (hi <= cap[:, None])
    err = np.where(valid, err, np.inf)
    best = np.argmin(err, 1)
    rows = np.arange(p)
    return (lo[rows, best] + hi[rows, best]) / 2, err[rows, best] / d


def _exact(w: np.ndarray, w0: int, wa: float, wm: float, q: int) -> tuple[float, np.ndarray]:
    pred = block_widths(w.size, w0, wa, wm, q).quantized
    return fit_error(pred, w), pred


def _tidy(w: np.ndarray, w0: int, wa: float, wm: float, q: int, err: float) -> tuple[float, float]:
    """wa and wm with the fewest decimals that keep the error (readable numbers, same network)."""
    for wm_dec, wa_dec in ((2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 3)):
        wa_r, wm_r = round(wa, wa_dec), round(wm, wm_dec)
        if wm_r > 1 and wa_r >= 0 and _exact(w, w0, wa_r, wm_r, q)[0] <= err + 1e-12:
            return wa_r, wm_r
    return float(wa), float(wm)


def fit_block_widths(widths: Sequence[int], q: int = 8) -> WidthFit:
    """Fit (w0, wa, wm) to per-block widths ``w_j`` (length d = depth); deterministic."""
    w = np.asarray(widths, dtype=float)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise RegNetExploreError(f"cannot fit widths {list(widths)[:8]}: give a non-empty sequence of positive "
                                 "per-block widths (stage widths repeated by depth: stage_to_block_widths)")
    if not (isinstance(q, int) and q >= 1):
        raise RegNetExploreError(f"width quantum q must be a positive integer, got {q!r}")
    log_w = np.log(w)
    first = max(q, int(round(w[0] / q)) * q)
    w0s = np.array([first + i * q for i in range(-_W0_STEPS, _W0_STEPS + 1) if first + i * q >= q], dtype=float)
    levels = int(np.ceil(np.log(2 * w.max() / w0s.min()) / np.log(REGNET_WM[0]))) + 2
    grid = np.geomspace(*REGNET_WM, _COARSE)
    cand_w0, cand_wm = (a.ravel() for a in np.meshgrid(w0s, grid, indexing="ij"))
    cand_wa, cand_err = _best_wa(cand_w0, cand_wm, log_w, q, levels)
    step = grid[1] / grid[0]
    for _ in range(_ROUNDS):
        top = np.argsort(cand_err, kind="stable")[:_TOP]
        fine = np.clip(cand_wm[top, None] * np.geomspace(1 / step, step, _FINE)[None, :], *REGNET_WM)
        new_w0, new_wm = np.repeat(cand_w0[top], _FINE), fine.ravel()
        new_wa, new_err = _best_wa(new_w0, new_wm, log_w, q, levels)
        cand_w0, cand_wm = np.concatenate([cand_w0, new_w0]), np.concatenate([cand_wm, new_wm])
        cand_wa, cand_err = np.concatenate([cand_wa, new_wa]), np.concatenate([cand_err, new_err])
        step = step ** (2 / (_FINE - 1))
    best = None
    for i in np.argsort(cand_err, kind="stable")[:_TOP]:
        w0, wa, wm = int(cand_w0[i]), float(cand_wa[i]), float(cand_wm[i])
        err = _exact(w, w0, wa, wm, q)[0]
        if best is None or err < best[0]:
            best = (err, w0, wa, wm)
    err, w0, wa, wm = best
    wa, wm = _tidy(w, w0, wa, wm, q, err)
    err, pred = _exact(w, w0, wa, wm, q)
    return WidthFit(w0=w0, wa=wa, wm=wm, depth=int(w.size), q=q, fit_error=err, widths=tuple(int(x) for x in pred))


def stage_to_block_widths(widths: Sequence[int], depths: Sequence[int]) -> list[int]:
    """Per-stage widths and depths -> per-block widths (each stage width repeated depth times)."""
    if len(widths) != len(depths) or any(int(d) < 1 for d in depths):
        raise RegNetExploreError(f"stage widths {list(widths)} and depths {list(depths)} must have the same length "
                                 "and every depth must be >= 1")
    return [int(w) for w, d in zip(widths, depths) for _ in range(int(d))]


def fit_stages(stages: RegNetStages) -> WidthFit:
    """Fit a built network; uses the widths before the group adjustment when the stages carry them."""
    widths = stages.pre_adjust_widths or stages.widths
    return fit_block_widths(stage_to_block_widths(widths, stages.depths))


def fit_checkpoint(path: str | os.PathLike) -> WidthFit:
    """Fit the stage widths and depths read from a checkpoint's tensors (:func:`convert.infer_arch`).

    Weights only hold widths after the group adjustment, so a zoo model's fit error here can be > 0 even though
    its pre-adjustment widths fit exactly.
    """
    state = backbone_state(read_checkpoint(path), drop_fc=True)
    return fit_stages(infer_arch(state, str(path)).stages)
