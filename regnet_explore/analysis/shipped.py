"""The design-space study shipped with the package, so that it can be read without training anything.

``results/`` beside this file holds sweep directories without their model folders (``sweep.json`` and
``results*.jsonl``), made by ``benchmarks/design_space_study.sh`` (``results/README.md`` has the commands and how far
the study got): ``regnetx`` and ``anynetxa`` under the ``--proxy`` preset, and the proxy-quality runs ``seed-1``,
``seed-2`` (training seeds), ``init-1``, ``init-2`` (init seeds alone), ``fidelity-4x`` (4x the budget) and
``fidelity-4x-seed-1`` (4 of those with another training seed), ``xeon-regnetx``, ``xeon-seed-1``, ``xeon-seed-2``
(the first 32 RegNetX networks and the seed runs again, on another kind of CPU), ``zen2-regnetx``, ``zen2-seed-1``
... ``zen2-seed-5`` (the ``--runs 2`` proxy's runs on a third kind), with ``quality.json`` and
``zen2-quality-2-runs.json`` (their figures); and the rank fidelity's long runs scored at a strict threshold,
``fidelity-4x-strict`` with its training seeds ``fidelity-4x-strict-seed-1`` and ``fidelity-4x-strict-seed-2``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from regnet_explore.analysis.comparison import ComparisonSettings
from regnet_explore.analysis.fidelity import study_fidelity, study_seed_mean_fidelity
from regnet_explore.analysis.sweep import SweepConfig, load_results, read_settings
from regnet_explore.errors import RegNetExploreError

RESULTS_DIR = Path(__file__).with_name("results")
STUDY_SPACES = ("regnetx", "anynetxa")
# the CPU kind of the shipped rows that predate the per-row record: results/README.md, "Which CPU trained them"
SHIPPED_CPU = "AMD EPYC (family 25 model 17, AVX512)"


def shipped_names() -> list[str]:
    """The shipped sweep directories."""
    return sorted(p.name for p in RESULTS_DIR.iterdir() if (p / "sweep.json").exists()) if RESULTS_DIR.is_dir() else []


def shipped_results(name: str, failed: bool = False) -> pd.DataFrame:
    """One shipped sweep's table (:func:`sweep.load_results`), e.g. ``shipped_results("regnetx")``."""
    if name not in shipped_names():
        raise RegNetExploreError(f"no shipped sweep {name!r}; shipped: {', '.join(shipped_names()) or 'none'}")
    return load_results(RESULTS_DIR / name, failed=failed)


def shipped_settings(name: str) -> SweepConfig:
    """The settings (``sweep.json``) a shipped sweep was run with."""
    shipped_results(name)  # checks the name
    return read_settings(RESULTS_DIR / name)


def shipped_quality() -> dict:
    """The proxy's quality figures (``benchmarks/proxy_quality.py``'s ``quality.json``)."""
    path = RESULTS_DIR / "quality.json"
    if not path.exists():
        raise RegNetExploreError(f"{path}: no proxy-quality figures shipped")
    return json.loads(path.read_text())


def shipped_fidelity() -> dict | None:
    """The shipped proxy's rank fidelity (:func:`fidelity.study_fidelity`); None while its runs are not shipped."""
    return study_fidelity(RESULTS_DIR)


def shipped_seed_mean_fidelity() -> dict | None:
    """The shipped proxy's rank fidelity against the mean of 3 training seeds (the plan's amendment:
    :func:`fidelity.study_seed_mean_fidelity`); None while its runs are not shipped."""
    return study_seed_mean_fidelity(RESULTS_DIR)


def shipped_comparison_settings(settings: ComparisonSettings) -> ComparisonSettings:
    """``settings`` for the shipped study: the noise, unless given, from the proxy's seed runs (quality.json), and
    the rows without a CPU record attributed to the kind that reproduced them (:data:`SHIPPED_CPU`)."""
    if settings.noise is None:
        quality = shipped_quality()
        settings = dataclasses.replace(settings, noise=quality["seed_std"], noise_source=(
            f"quality.json: {quality['noise_models']} networks x {quality['seeds']} training seeds"))
    return dataclasses.replace(settings, cpu=settings.cpu or SHIPPED_CPU)


__all__ = ["RESULTS_DIR", "SHIPPED_CPU", "STUDY_SPACES", "shipped_comparison_settings", "shipped_fidelity",
           "shipped_names", "shipped_quality", "shipped_results", "shipped_seed_mean_fidelity", "shipped_settings"]
