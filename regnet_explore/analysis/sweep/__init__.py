"""Design-space sweeps: sample backbones from a design space, train each briefly in PointPillars, tabulate the errors.

The RegNet paper's method (Radosavovic et al. 2020, section 2): draw n networks from a design space, train each with
the same short recipe, and compare the error distributions of spaces. Here a sweep is the seeded, prefix-stable
stream of :func:`sampling.sample_space`; every model gets the base detector with its backbone swapped in, the same
data order and iteration budget, and the dataset's official metric (the engine's evaluation). Layout of ``out``::

    sweep.json                    the settings (those that change results are pinned: a rerun must match them)
    results.jsonl                 one row per finished model (a shard writes results.shard-I-of-N.jsonl)
    models/<space>-<index>/       the engine's work dir: latest.pth, train.log.json, curves.png, eval/
    models/<space>-<index>/run-<r>/   with ``runs`` > 1: one such work dir a run, and its scored row.json

A row is appended as one line with flush + fsync, by the one process that writes the table, once its model is
evaluated: a kill leaves the whole row or none (a torn last line is ignored and cut on the next run). Rerunning the
same command skips the models in the table, and a model killed while training resumes from its ``latest.pth``.

The parts: :mod:`.settings` (what a sweep is), :mod:`.model` (one model trained and scored), :mod:`.table` (the
results table), :mod:`.runner` (the models of one or several sweeps run locally or by :mod:`.ray_backend`).
"""

from regnet_explore.analysis.sweep.model import model_dir, run_seeds, train_one
from regnet_explore.analysis.sweep.runner import RUNNER_FIELDS, interleave, pending, run_sweep, run_sweeps
from regnet_explore.analysis.sweep.settings import (
    BACKENDS,
    DEFAULT_DETECTOR,
    PER_MODEL,
    PROXY,
    RESULT_FIELDS,
    SweepConfig,
    base_detector,
    complexity_probe,
    data_root,
    iteration_plan,
    normalize,
    read_settings,
    recipe,
    sample_models,
    sweep_detector,
    val_root,
)
from regnet_explore.analysis.sweep.table import (
    MixedCPUWarning,
    finished,
    load_results,
    read_rows,
    results_path,
    results_writer,
    warn_mixed_devices,
)

__all__ = ["BACKENDS", "DEFAULT_DETECTOR", "PER_MODEL", "PROXY", "RESULT_FIELDS", "RUNNER_FIELDS", "MixedCPUWarning",
           "SweepConfig", "base_detector", "complexity_probe", "data_root", "finished", "interleave",
           "iteration_plan", "load_results", "model_dir", "normalize", "pending", "read_settings", "recipe",
           "run_seeds", "read_rows", "results_path", "results_writer", "run_sweep", "run_sweeps", "sample_models",
           "sweep_detector", "train_one", "val_root", "warn_mixed_devices"]
