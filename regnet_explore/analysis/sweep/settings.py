"""A sweep's settings (:class:`SweepConfig`, the ``--proxy`` preset), checked once (:func:`normalize`) and pinned
in its directory (:func:`pin_settings`); the detector each sampled backbone goes into and the data it trains on."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from regnet_explore.analysis.sampling import SPACES, BackboneInput, SampledNet, SampleReport, sample_space
from regnet_explore.detection.configs import DetectorConfig, FPNNeckConfig, get_config, with_backbone
from regnet_explore.detection.window import crop_config
from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import write_json_atomic
from regnet_explore.settings import (
    COUNT,
    COUNT_0,
    NON_NEGATIVE,
    SEED,
    check_device,
    check_fields,
    within,
)
from regnet_explore.synthetic import ensure_synthetic
from regnet_explore.train.engine import TrainConfig

DEFAULT_DETECTOR = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
# TrainConfig fields the sweep sets for each model (from its own settings, the sampled backbone and the budget)
PER_MODEL = ("detector", "data", "version", "work_dir", "seed", "init_seed", "epochs", "max_iters_per_epoch",
             "evaluate", "resume", "checkpoint_interval", "progress", "device")
# SweepConfig fields, and TrainConfig fields of its recipe, that change a model's row; a sweep directory refuses to
# continue with others
RESULT_FIELDS = ("space", "seed", "train_seed", "init_seed", "runs", "detector", "data", "synthetic", "val_synthetic",
                 "version", "budget", "classes", "neck_channels", "encoder_channels", "max_points", "flops", "params",
                 "num_stages", "metric")
RECIPE_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                             if f.name not in (*PER_MODEL, "log_interval", "workers"))
# the recipe fields that sweep.json held at the top level before the recipe was a TrainConfig of its own
_FLAT_RECIPE = ("batch_size", "lr", "lr_schedule", "warmup_iters", "crop", "crop_placement", "sweeps", "pretrained")
BACKENDS = ("local", "ray")


def recipe(budget: int, **given) -> TrainConfig:
    """The training recipe of a sweep of ``budget`` iterations a model: ``given`` TrainConfig fields, warm-up a tenth
    of the budget unless given."""
    return TrainConfig(**{"warmup_iters": max(1, budget // 10), **given})


# The proxy task (``regnet-explore sweep --proxy``; each choice and its measurements: docs/sweeps.md): car detection
# in a +-16 m window (128 x 128 pillars) of one LiDAR sweep; trained on the 512 training key frames of a synthetic
# nuScenes set of 160 scenes, scored on the 512 validation key frames of one of 640 scenes; a 64-wide FPN and a
# one-layer pillar encoder with 20 points per pillar; batch 1, 512 iterations (one epoch), lr 2e-3 after 50 warm-up
# iterations, cosine to 0; backbones of 0.2-0.8 GFLOPs on that grid; error = 1 - nuScenes AP of cars
# (DetectionEval, within the window).
PROXY: dict = dict(synthetic=(160, 4), val_synthetic=(640, 4), classes=("car",), neck_channels=64,
                   encoder_channels=(64,), max_points=20, budget=512, flops=(0.2e9, 0.8e9), metric="AP_car",
                   train=TrainConfig(crop=16.0, sweeps=1, batch_size=1, lr=2e-3, lr_schedule="cosine",
                                     warmup_iters=50))


@dataclass
class SweepConfig:
    """One sweep. ``flops`` / ``params``: (low, high) windows of the backbone's complexity (multiply-adds and
    parameters, pycls rules) on the training BEV grid. ``metric``: ``mAP``, ``NDS`` or ``AP_<class>``; the error
    is ``1 - metric``. ``train``: the recipe every model is trained with (None: :func:`recipe` of the budget); the
    sweep sets its :data:`PER_MODEL` fields. ``shard=(i, n)`` trains the models whose index is i modulo n."""

    space: str = "regnetx"
    samples: int = field(default=32, metadata=within(COUNT))
    seed: int = field(default=0, metadata=within(SEED))  # sampling seed, and the training seed unless train_seed
    # the same networks trained from other initial weights and data order
    train_seed: int | None = field(default=None, metadata=within(SEED, optional=True))
    # the same networks from other initial weights alone, on the same data order
    init_seed: int | None = field(default=None, metadata=within(SEED, optional=True))
    # training runs a model (training seeds t*runs .. t*runs+runs-1), its row their mean
    runs: int = field(default=1, metadata=within(COUNT))
    detector: str = DEFAULT_DETECTOR
    data: str | None = None  # dataroot; None: a synthetic set of the detector's dataset
    synthetic: tuple[int, int] | None = None  # that set's (scenes, key frames); None: the default mini set
    val_synthetic: tuple[int, int] | None = None  # score on this synthetic set's validation split (None: the same set)
    version: str | None = None
    budget: int = field(default=400, metadata=within(COUNT))  # training iterations per model
    train: TrainConfig | None = None  # None: recipe(budget)
    # the detector around each backbone: a class subset, the FPN width, the pillar encoder's layers and points per
    # pillar (None: the base detector's)
    classes: tuple[str, ...] | None = None
    neck_channels: int | None = field(default=None, metadata=within(COUNT, optional=True))
    encoder_channels: tuple[int, ...] | None = None
    max_points: int | None = field(default=None, metadata=within(COUNT, optional=True))
    flops: tuple[float, float] | None = None
    params: tuple[float, float] | None = None
    num_stages: int = field(default=4, metadata=within(COUNT))
    metric: str = "mAP"
    out: str = "sweeps/run"
    workers: int = field(default=1, metadata=within(COUNT))
    devices: tuple[str, ...] = ()  # worker i trains on devices[i % len]; empty: cuda if available, else cpu
    shard: tuple[int, int] = (0, 1)
    backend: str = "local"  # 'local' (a process pool of `workers`) or 'ray' (tasks on a Ray cluster)
    address: str | None = None  # Ray: the cluster to join; None: a local Ray instance
    # Ray: CPUs each model's task reserves (and its torch threads)
    cpus_per_model: int = field(default=1, metadata=within(COUNT))
    # Ray: GPUs each model's task reserves (> 0: trains on "cuda")
    gpus_per_model: float = field(default=0, metadata=within(NON_NEGATIVE))
    # Ray: reruns of a model whose worker died (preempted, killed), each resuming latest.pth
    max_retries: int = field(default=3, metadata=within(COUNT_0))
    retry_failed: bool = False  # train again the models whose row says status 'failed'

    def __post_init__(self):
        if self.train is None:
            self.train = recipe(self.budget)


def _check_recipe(train: TrainConfig) -> None:
    default = TrainConfig()
    fixed = [name for name in PER_MODEL if getattr(train, name) != getattr(default, name)]
    if fixed:
        raise RegNetExploreError(f"train.{fixed[0]}: the sweep sets it for each model; leave it at its default "
                                 f"({getattr(default, fixed[0])!r}) and give the sweep's setting instead")
    if not isinstance(train.detector, str):
        raise RegNetExploreError("train.detector: give the base detector as the sweep's detector")


def _check_metric(cfg: SweepConfig, base: DetectorConfig, classes: tuple[str, ...] | None) -> None:
    unknown = [c for c in classes or () if c not in base.class_names]
    if unknown or classes == ():
        raise RegNetExploreError(f"classes {list(classes or ())}: give a non-empty subset of {base.name}'s classes "
                                 f"({', '.join(base.class_names)})")
    metrics = ["mAP"] + (["NDS"] if base.dataset == "nuscenes" else []) + [f"AP_{c}" for c in classes or
                                                                            base.class_names]
    if cfg.metric not in metrics:
        raise RegNetExploreError(f"metric {cfg.metric!r} is not reported on {base.dataset}"
                                 f"{' for these classes' if classes else ''}: use one of {', '.join(metrics)}")


def _check_runner(cfg: SweepConfig) -> None:
    i, n = cfg.shard
    if not 0 <= i < n:
        raise RegNetExploreError(f"shard {i}/{n}: need 0 <= I < N")
    if cfg.workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RegNetExploreError("workers > 1 inside a torchrun job: give each model the whole job (--workers 1)")
    if cfg.backend not in BACKENDS:
        raise RegNetExploreError(f"backend {cfg.backend!r}: use one of {', '.join(BACKENDS)}")
    for device in cfg.devices:
        check_device(device)


def normalize(cfg: SweepConfig) -> SweepConfig:
    """Checked settings with the detector's full name, absolute paths (so reruns compare equal) and the recipe."""
    base = get_config(cfg.detector)
    if cfg.space not in SPACES:
        raise RegNetExploreError(f"unknown design space {cfg.space!r}: use one of {', '.join(SPACES)}")
    check_fields(cfg)
    _check_runner(cfg)
    classes = tuple(cfg.classes) if cfg.classes is not None else None
    _check_metric(cfg, base, classes)
    train = cfg.train
    _check_recipe(train)
    if cfg.data is not None and (cfg.synthetic is not None or cfg.val_synthetic is not None):
        raise RegNetExploreError("give a dataroot or the size of a synthetic set, not both")
    if cfg.data is not None and not Path(cfg.data).is_dir():
        raise RegNetExploreError(f"data {cfg.data}: no such dataset folder")
    if train.pretrained is not None and not Path(train.pretrained).is_file():
        raise RegNetExploreError(f"{train.pretrained}: no such pretrained checkpoint")
    data = str(Path(cfg.data).resolve()) if cfg.data is not None else None
    pretrained = str(Path(train.pretrained).resolve()) if train.pretrained is not None else None
    tuples = {name: tuple(getattr(cfg, name)) for name in ("synthetic", "val_synthetic", "encoder_channels")
              if getattr(cfg, name) is not None}
    train = dataclasses.replace(train, pretrained=pretrained, translation_std=tuple(train.translation_std))
    return dataclasses.replace(cfg, detector=base.name, data=data, train=train, devices=tuple(cfg.devices),
                               classes=classes, shard=tuple(int(x) for x in cfg.shard), **tuples)


def _current_layout(settings: dict) -> dict:
    """A ``sweep.json`` in today's layout: one written before the recipe was a TrainConfig of its own held the
    recipe's fields at the top level, and warm-up ``null`` (or 0) for a tenth of the budget."""
    if "train" in settings:
        return settings
    flat = {k: v for k, v in settings.items() if k not in _FLAT_RECIPE}
    given = {k: settings[k] for k in _FLAT_RECIPE if k in settings}
    given["warmup_iters"] = given.get("warmup_iters") or max(1, settings["budget"] // 10)
    return {**flat, "train": json.loads(json.dumps(dataclasses.asdict(recipe(settings["budget"], **given))))}


def _tuples(settings: dict) -> dict:
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in settings.items()}


def read_settings(path: str | os.PathLike) -> SweepConfig:
    """The settings a sweep directory's ``sweep.json`` (or that file) pins, in either layout."""
    path = Path(path)
    path = path / "sweep.json" if path.is_dir() else path
    try:
        settings = _current_layout(json.loads(path.read_text()))
        known = {f.name for f in dataclasses.fields(SweepConfig)}
        train = TrainConfig(**_tuples(settings["train"]))
        return SweepConfig(**_tuples({k: v for k, v in settings.items() if k in known and k != "train"}), train=train)
    except (ValueError, TypeError, KeyError) as e:
        raise RegNetExploreError(f"{path}: not a sweep settings file ({e})") from None


def _result_settings(settings: dict) -> dict:
    """The settings of a ``sweep.json`` (today's layout) that change a model's row, by name (the recipe's as
    ``train.<name>``); a field added since a sweep was made holds its default there."""
    sweep_defaults = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
    train_defaults = json.loads(json.dumps(dataclasses.asdict(TrainConfig())))
    view = {k: settings.get(k, sweep_defaults[k]) for k in RESULT_FIELDS}
    view.update({f"train.{k}": settings["train"].get(k, train_defaults[k]) for k in RECIPE_RESULT_FIELDS})
    return view


def pin_settings(cfg: SweepConfig) -> None:
    """Write ``out/sweep.json``, or refuse when the one there differs in a setting that changes results."""
    path = Path(cfg.out) / "sweep.json"
    new = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as read back
    if path.exists():
        try:
            old = _current_layout(json.loads(path.read_text()))
        except (ValueError, KeyError) as e:
            raise RegNetExploreError(f"{path}: not a sweep settings file ({e})") from None
        there, now = _result_settings(old), _result_settings(new)
        diff = [f"{k} {there[k]!r} there, {now[k]!r} now" for k in there if there[k] != now[k]]
        if diff:
            raise RegNetExploreError(f"{cfg.out} holds a sweep with other settings ({'; '.join(diff)}): rerun with "
                                     "the settings of its sweep.json, or give another --out")
    write_json_atomic(new, path)


def data_root(cfg: SweepConfig) -> str:
    """The dataroot, generating the synthetic set on first use."""
    if cfg.data is not None:
        return cfg.data
    scenes, keyframes = cfg.synthetic or (None, None)
    return str(ensure_synthetic(get_config(cfg.detector).dataset, scenes, keyframes))


def val_root(cfg: SweepConfig) -> str:
    """The dataroot whose validation split scores the models: ``cfg.val_synthetic``'s set, else :func:`data_root`."""
    if cfg.val_synthetic is None:
        return data_root(cfg)
    return str(ensure_synthetic(get_config(cfg.detector).dataset, *cfg.val_synthetic))


def base_detector(cfg: SweepConfig) -> DetectorConfig:
    """The detector every sampled backbone goes into: ``cfg.detector`` with the sweep's class subset, neck width,
    pillar encoder and points per pillar."""
    det = get_config(cfg.detector)
    if cfg.classes is not None:
        det = dataclasses.replace(det, class_names=tuple(cfg.classes))
    if cfg.neck_channels is not None:
        if not isinstance(det.neck, FPNNeckConfig):
            raise RegNetExploreError(f"neck_channels: {det.name} has a {det.neck.label} neck, not an FPN")
        det = dataclasses.replace(det, neck=dataclasses.replace(det.neck, out_channels=cfg.neck_channels))
    if cfg.encoder_channels is not None:
        channels = BackboneInput.of_detector(det).in_channels
        if cfg.encoder_channels[-1] != channels:
            raise RegNetExploreError(f"encoder_channels {list(cfg.encoder_channels)}: the last must be the "
                                     f"backbone's input width {channels}")
        det = dataclasses.replace(det, encoder=dataclasses.replace(det.encoder,
                                                                   feat_channels=tuple(cfg.encoder_channels)))
    if cfg.max_points is not None:
        det = dataclasses.replace(det, voxel=dataclasses.replace(det.voxel, max_points=cfg.max_points))
    return det


def sweep_detector(cfg: SweepConfig, sample: SampledNet) -> DetectorConfig:
    """The detector of one model: :func:`base_detector` with the sampled backbone."""
    base = base_detector(cfg)
    return with_backbone(base, sample.stages, name=f"{base.name}@{sample.space}-{sample.index}")


def training_geometry(cfg: SweepConfig, det: DetectorConfig) -> DetectorConfig:
    """The detector's geometry during training: the crop, if any."""
    return crop_config(det, cfg.train.crop) if cfg.train.crop is not None else det


def complexity_probe(cfg: SweepConfig) -> BackboneInput:
    """The backbone's input in this sweep's detector: no stem, the pillar canvas at the training grid."""
    return BackboneInput.of_detector(training_geometry(cfg, get_config(cfg.detector)))


def sample_models(cfg: SweepConfig) -> SampleReport:
    """The sweep's ``cfg.samples`` networks (the first k of a larger sweep are those of a sweep of k)."""
    # AnyNetXA accepts about one draw in 2,000 in the proxy's window: allow for it
    return sample_space(cfg.space, cfg.samples, cfg.seed, flops=cfg.flops, params=cfg.params,
                        num_stages=cfg.num_stages, probe=complexity_probe(cfg), max_draws=100_000 + 5_000 * cfg.samples)


def iteration_plan(budget: int, train_samples: int, batch: int) -> tuple[int, int]:
    """(epochs, iterations per epoch): as few epochs as the split allows, the budget spread evenly over them (the
    product exceeds the budget by less than one iteration per epoch)."""
    epochs = math.ceil(budget / max(1, train_samples // batch))
    return epochs, math.ceil(budget / epochs)
