"""Two sweeps compared: the figures of ``sweep-report A B`` (and ``--json``), computed from the tables alone.

The primary result (docs/sweeps.md, "The extension ... the plan") is the complexity-adjusted shift with its 95 %
interval and permutation p, and its equivalence test at a margin; the rest (KS, Hodges-Lehmann, the mean
difference, EDFs at a common complexity, trends) is secondary. Every figure says what the comparison could have
detected: the shift it finds with 80 % power at the tables' sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from regnet_explore.analysis import stats
from regnet_explore.analysis.edf import ks_test, summary
from regnet_explore.analysis.fit import fit_block_widths, stage_to_block_widths
from regnet_explore.errors import RegNetExploreError
from regnet_explore.settings import NON_NEGATIVE, POSITIVE, SEED, Domain, check_fields, within

RESAMPLES = Domain(int, 100)  # permutations, bootstrap resamples, simulated tables: fewer say nothing

REGNET_PARAMS = ("depth", "w0", "wa", "wm", "group_w", "bot_mul")
THRESHOLDS = (0.40, 0.45, 0.50)
UNRECORDED = "unrecorded"
STAGES = ("adjusted shift", "distributions", "power", "trends")  # compare's steps, as its progress bar names them


@dataclass(frozen=True)
class ComparisonSettings:
    """``margin``: the equivalence margin in error; ``noise``: one run's measurement noise (std of a model's error
    across training seeds; None: measured from the tables' repeated runs where they have them, else 0);
    ``shift``: the shift whose required models per space are reported (None: the margin); ``cpu``: the CPU kind
    of rows that record none."""

    margin: float = field(default=0.025, metadata=within(POSITIVE))
    noise: float | None = field(default=None, metadata=within(NON_NEGATIVE, optional=True))
    noise_source: str = ""
    shift: float | None = field(default=None, metadata=within(POSITIVE, optional=True))
    level: float = 0.95
    power: float = 0.8
    alpha: float = 0.05
    permutations: int = field(default=10_000, metadata=within(RESAMPLES))
    simulations: int = field(default=2000, metadata=within(RESAMPLES))
    seed: int = field(default=0, metadata=within(SEED))
    cpu: str | None = None

    def __post_init__(self):
        check_fields(self)
        for name in ("level", "power", "alpha"):
            if not 0 < getattr(self, name) < 1:
                raise RegNetExploreError(f"{name} must be in (0, 1), got {getattr(self, name)}")


def cpu_kinds(table: pd.DataFrame, assume: str | None = None) -> pd.Series:
    """Each row's CPU kind (``cpu``), rows without one given ``assume`` (else ``unrecorded``)."""
    recorded = table["cpu"] if "cpu" in table else pd.Series(None, index=table.index, dtype=object)
    return recorded.fillna(assume or UNRECORDED).astype(str)


def measured_noise(tables: dict[str, pd.DataFrame]) -> tuple[float, int] | None:
    """One run's noise from the models run more than once (``run_errors``): the root of their mean within-model
    variance, and how many models; None without such models."""
    variances = [np.var(r, ddof=1) for t in tables.values() if "run_errors" in t
                 for r in t["run_errors"].dropna() if len(r) > 1]
    return (float(np.sqrt(np.mean(variances))), len(variances)) if variances else None


def e_fit(table: pd.DataFrame, progress: bool = False) -> np.ndarray:
    """Each model's distance to the RegNet family (:func:`fit.fit_block_widths`'s e_fit of its block widths);
    ``progress``: a bar over the models (a few hundred take seconds)."""
    models = tqdm(zip(table["stage_widths"], table["stage_depths"]), total=len(table), desc="e_fit", unit="model",
                  leave=False, disable=not progress)
    return np.array([fit_block_widths(stage_to_block_widths(w, d)).fit_error for w, d in models])


def _params(table: pd.DataFrame) -> list[str]:
    return [p for p in REGNET_PARAMS if p in table and table[p].nunique() > 1]


def _trends(table: pd.DataFrame, progress: bool = False) -> list[dict]:
    table = table.copy()
    params = _params(table)
    if not params:  # an AnyNet space: how far each model is from a RegNet
        table["e_fit"] = e_fit(table, progress)
        params = ["e_fit"]
    return stats.trends(table, params).to_dict("records")


def _power(tables: dict[str, pd.DataFrame], adjusted: stats.AdjustedShift, s: ComparisonSettings) -> dict:
    (name_a, a), (name_b, b) = tables.items()
    noise, source = s.noise, s.noise_source
    if noise is None:
        measured = measured_noise(tables)
        noise, source = (measured[0], f"{measured[1]} models run more than once") if measured else \
            (0.0, "none given or measured: power of the tables' spread as it is")
    runs = int(max(t["runs"].max() if "runs" in t else 1 for t in tables.values()))
    pop = stats.null_population({name_a: a["error"], name_b: b["error"]}, noise, runs)
    common = dict(noise=noise, runs=runs, power=s.power, alpha=s.alpha, n_sim=s.simulations, seed=s.seed)
    shift = s.shift if s.shift is not None else s.margin
    detectable = {test: stats.detectable_shift(pop, len(a), len(b), test, tol=2e-4, **common)
                  for test in ("mannwhitney", "ks")}
    detectable["adjusted"] = stats.adjusted_detectable_shift(adjusted, s.power, s.alpha)
    needed = {test: stats.models_needed(pop, shift, test, **common) for test in ("mannwhitney", "ks")}
    # the adjusted shift's standard error falls as 1 / sqrt(models per space)
    needed["adjusted"] = math.ceil(max(len(a), len(b)) * (detectable["adjusted"] / shift) ** 2)
    return dict(noise=noise, noise_source=source, runs_per_model=runs, power=s.power, alpha=s.alpha,
                detectable_shift=detectable, shift=shift, models_needed=needed,
                power_at_shift=stats.simulated_power(pop, len(a), len(b), shift, "mannwhitney", noise, runs,
                                                     s.alpha, s.simulations, s.seed))


def _verdict(names: tuple[str, str], adjusted: stats.AdjustedShift, equivalence: stats.Equivalence,
             detectable: float) -> str:
    a, b = names
    interval = f"{adjusted.estimate:+.3f} [{adjusted.low:+.3f}, {adjusted.high:+.3f}]"
    if adjusted.low > 0 or adjusted.high < 0:
        worse, better = (b, a) if adjusted.estimate > 0 else (a, b)
        return (f"{worse} is worse than {better} at equal FLOPs and activations: error {b} - {a} = {interval} "
                f"(95 %, permutation p = {adjusted.p_permutation:.3g})")
    if equivalence.equivalent:
        return (f"{a} and {b} are equivalent within +-{equivalence.margin:g} error at equal complexity "
                f"({b} - {a} = {interval}; TOST p = {equivalence.p:.3g})")
    return (f"inconclusive: {b} - {a} = {interval} at equal complexity, neither a difference nor equivalence within "
            f"+-{equivalence.margin:g}; at these sizes the comparison detects shifts of {detectable:.3f} or more "
            "with 80 % power")


def _next_stage(bar: tqdm, stage: int) -> None:
    bar.update()
    bar.set_postfix_str(STAGES[stage] if stage < len(STAGES) else "done")


def compare(tables: dict[str, pd.DataFrame], settings: ComparisonSettings | None = None,
            progress: bool = False) -> dict:
    """Every figure of two sweeps compared (finished rows with ``error``, ``flops``, ``acts``), as plain data;
    ``progress``: a bar through :data:`STAGES` (seconds each at a few hundred models a space)."""
    s = settings or ComparisonSettings()
    if len(tables) != 2:
        raise RegNetExploreError(f"compare takes two tables, got {len(tables)}")
    tables = {name: t.assign(cpu=cpu_kinds(t, s.cpu)) for name, t in tables.items()}
    (name_a, a), (name_b, b) = tables.items()
    for name, t in tables.items():
        if len(t) < 3:
            raise RegNetExploreError(f"{name}: {len(t)} finished models; a comparison needs at least 3 a space")
    kinds = sorted(set(a["cpu"]) | set(b["cpu"]))
    factors = ("cpu",) if len(kinds) > 1 else ()
    with tqdm(total=len(STAGES), desc="compare", unit="stage", leave=False, disable=not progress) as bar:
        bar.set_postfix_str(STAGES[0])
        adjusted = stats.adjusted_shift(a, b, factors=factors, level=s.level, n_permutations=s.permutations,
                                        seed=s.seed)
        equivalence = stats.tost(adjusted.estimate, adjusted.se, adjusted.df, s.margin, s.alpha)
        _next_stage(bar, 1)
        weights = stats.joint_complexity_weights(tables)
        normalised = ks_test(a["error"], b["error"], weights[name_a], weights[name_b])
        d, p = stats.ks_exact(a["error"], b["error"])
        hodges_lehmann = stats.hodges_lehmann(a["error"], b["error"], s.level)
        mean_difference = stats.mean_difference(a["error"], b["error"], s.level, seed=s.seed)
        _next_stage(bar, 2)
        power = _power(tables, adjusted, s)
        _next_stage(bar, 3)
        trends = {name: _trends(t, progress) for name, t in tables.items()}
        _next_stage(bar, 4)
    return dict(
        spaces={name: {**summary(t["error"], thresholds=THRESHOLDS), "cpu": t["cpu"].value_counts().to_dict(),
                       "median_acts": float(t["acts"].median()), "median_flops": float(t["flops"].median())}
                for name, t in tables.items()},
        names=[name_a, name_b], settings=asdict(s), cpu_kinds=kinds, cpu_adjusted=bool(factors),
        primary=dict(adjusted_shift=adjusted.to_dict(), equivalence=equivalence.to_dict()),
        secondary=dict(
            ks=dict(D=d, p=p),
            ks_complexity_normalised=dict(D=normalised.statistic, p=normalised.pvalue, n_a=normalised.n_a,
                                          n_b=normalised.n_b, columns=list(stats.COMPLEXITY), bins=3),
            hodges_lehmann=hodges_lehmann.to_dict(), mean_difference=mean_difference.to_dict()),
        power=power,
        trends=trends,
        verdict=_verdict((name_a, name_b), adjusted, equivalence, power["detectable_shift"]["adjusted"]))


def _interval(e: dict, digits: int = 3) -> str:
    return f"{e['estimate']:+.{digits}f} [{e['low']:+.{digits}f}, {e['high']:+.{digits}f}]"


def format_comparison(result: dict) -> str:
    """:func:`compare`'s figures as the text of ``sweep-report``."""
    a, b = result["names"]
    adj, eq = result["primary"]["adjusted_shift"], result["primary"]["equivalence"]
    sec, pw = result["secondary"], result["power"]
    level = f"{adj['level']:.0%}"
    lines = [f"comparison of {a} and {b} (shifts are {b} - {a} in error; positive: {b} worse):"]
    for name, sp in result["spaces"].items():
        shares = ", ".join(f"{sp[f'frac_le_{t:g}']:.0%} <= {t:g}" for t in THRESHOLDS)
        cpus = "; ".join(f"{k} x{v}" for k, v in sp["cpu"].items())
        lines.append(f"  {name}: n = {int(sp['n'])}, error best {sp['min']:.4f}, q25 {sp['q25']:.4f}, median "
                     f"{sp['median']:.4f}; {shares}; median {sp['median_flops'] / 1e9:.3f} GFLOPs, "
                     f"{sp['median_acts'] / 1e6:.2f} M activations; CPU: {cpus}")
    cpu = ("the CPU kind as a factor" if result["cpu_adjusted"] else
           f"one CPU kind ({result['cpu_kinds'][0]})")
    lines += [
        f"  primary, adjusted for log FLOPs and log activations ({cpu}): shift {_interval(adj)} ({level}, HC3), "
        f"p = {adj['p']:.3g}, permutation p = {adj['p_permutation']:.3g} ({adj['n_permutations']} permutations)",
        f"  primary, equivalence at +-{eq['margin']:g}: {'equivalent' if eq['equivalent'] else 'not shown'} "
        f"(TOST p = {eq['p']:.3g}; {1 - 2 * eq['alpha']:.0%} interval [{eq['low']:+.3f}, {eq['high']:+.3f}])",
        f"  secondary: Hodges-Lehmann shift {_interval(sec['hodges_lehmann'])}, Mann-Whitney p = "
        f"{sec['hodges_lehmann']['p']:.3g}; mean difference {_interval(sec['mean_difference'])} (BCa bootstrap)",
        f"  secondary: KS D = {sec['ks']['D']:.3f}, exact p = {sec['ks']['p']:.3g}; at a common FLOPs x "
        f"activations distribution (3 x 3 quantile cells) D = {sec['ks_complexity_normalised']['D']:.3f}, "
        f"p = {sec['ks_complexity_normalised']['p']:.3g} (effective sizes {sec['ks_complexity_normalised']['n_a']:.0f}"
        f" and {sec['ks_complexity_normalised']['n_b']:.0f})",
        f"  power: with {pw['runs_per_model']} run(s) a model and noise {pw['noise']:.3f} ({pw['noise_source']}), "
        f"the shifts detected with {pw['power']:.0%} power at alpha {pw['alpha']:g}: adjusted "
        f"{pw['detectable_shift']['adjusted']:.3f}, Mann-Whitney {pw['detectable_shift']['mannwhitney']:.3f}, "
        f"KS {pw['detectable_shift']['ks']:.3f}",
        f"  power: a shift of {pw['shift']:g} is detected with power {pw['power_at_shift']:.2f} (Mann-Whitney); "
        f"{pw['power']:.0%} power needs {pw['models_needed']['adjusted']} models a space (adjusted), "
        f"{pw['models_needed']['mannwhitney']} (Mann-Whitney), {pw['models_needed']['ks']} (KS)",
        "  trends (Spearman with the error; adjusted: log FLOPs and log activations partialled out; p Holm-corrected "
        "within each column):"]
    for name, rows in result["trends"].items():
        for r in rows:
            lines.append(f"    {name} {r['param']}: rho {r['rho']:+.2f} (p {r['p_holm']:.3g}), adjusted "
                         f"{r['rho_adjusted']:+.2f} (p {r['p_adjusted_holm']:.3g})")
    lines.append(f"  verdict: {result['verdict']}")
    return "\n".join(lines)


__all__ = ["REGNET_PARAMS", "STAGES", "THRESHOLDS", "ComparisonSettings", "compare", "cpu_kinds", "e_fit",
           "format_comparison", "measured_noise"]
