"""The training engine: the reference recipe, one process or many (torchrun), resumable, logged.

Determinism is by construction: the sample order of epoch e is a permutation seeded by (seed, e), each sample's
augmentation by (seed, e, index). A run resumed from the checkpoint of epoch e therefore replays epochs e+1...
exactly as an uninterrupted run does, and N processes with the global batch of one see the same data. Losses are
normalised by the positives of the *global* batch and batch norms synchronise exact global statistics, so the
parameters after a step do not depend on how the batch was split across processes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from regnet_explore.data.dataset import (
    NUSCENES_VERSIONS,
    DetectionData,
    open_dataset,
    training_split,
    validation_split,
)
from regnet_explore.detection.checkpoint import load_pretrained_backbone, save_checkpoint
from regnet_explore.detection.configs import DetectorConfig, RegNetBackboneConfig, get_config
from regnet_explore.detection.detector import PointPillars, autocast
from regnet_explore.detection.window import crop_config, object_window, random_window
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model, flat_metrics, label_map
from regnet_explore.io import atomic_write
from regnet_explore.parallel import global_sum
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.regnet.zoo import zoo_entry
from regnet_explore.settings import (
    COUNT,
    COUNT_0,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
    check_device,
    check_fields,
    within,
)
from regnet_explore.synthetic import ensure_default_dataset
from regnet_explore.train.augment import AugmentConfig, Sample3D, augment
from regnet_explore.train.curves import plot_log, trim_log
from regnet_explore.train.distributed import DistEnv, convert_batchnorm, init_distributed
from regnet_explore.train.losses import LossConfig, detection_loss
from regnet_explore.train.schedule import ScheduleConfig, lr_at, make_optimizer
from regnet_explore.train.targets import AssignerConfig, build_targets


@dataclass
class TrainConfig:
    """One training run. ``None`` fields take the detector config's reference values."""

    detector: str | DetectorConfig = "hv_pointpillars_regnet-400mf_fpn_sbn-all_4x8_2x_nus-3d"
    data: str | None = None  # dataroot; None: the default synthetic set of the detector's dataset
    version: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    work_dir: str = "work_dirs/run"
    epochs: int = field(default=24, metadata=within(COUNT))
    batch_size: int | None = field(default=None, metadata=within(COUNT, optional=True))  # per process; None: the
    # config's samples_per_gpu
    # None: the reference's 1e-3, whatever the batch (mmdetection3d's default)
    lr: float | None = field(default=None, metadata=within(POSITIVE, optional=True))
    auto_scale_lr: bool = False  # scale lr linearly by the total batch over 32 (mmdetection3d's auto_scale_lr)
    lr_schedule: str = "step"  # 'step': x0.1 at epochs 20 and 23 of 24 (the reference); 'cosine': to 0 (pycls)
    warmup_iters: int = field(default=1000, metadata=within(COUNT_0))
    # data order, augmentation, windows, and the initial weights unless init_seed is given
    seed: int = field(default=0, metadata=within(SEED))
    # the initial weights' seed alone (None: seed): same data, other initialization
    init_seed: int | None = field(default=None, metadata=within(SEED, optional=True))
    # half-extent (m) of a cropped square BEV range, e.g. 25; None: full range
    crop: float | None = field(default=None, metadata=within(POSITIVE, optional=True))
    # 'center': the crop around the ego, scored inside it; 'random': each batch a window anywhere in the full
    # range (absolute coordinates kept, so the weights see every distance), scored on the full range; 'objects':
    # as 'random', but each window around a ground-truth box of the batch
    crop_placement: str = "center"
    # std (m) of a global shift of each training cloud per axis (GlobalRotScaleTrans's translation_std); a z shift
    # makes the network read a box's height off its points instead of a height learnt per place (the reference: 0)
    translation_std: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # probability of RandomFlip3D's vertical BEV flip (x -> -x; the reference: 0): the ground's tilt in the sensor
    # frame then no longer tells the height from the place
    flip_vertical: float = field(default=0.0, metadata=within(PROBABILITY))
    max_iters_per_epoch: int | None = field(default=None, metadata=within(COUNT, optional=True))
    sweeps: int = field(default=10, metadata=within(COUNT_0))  # sweeps merged into each key frame
    # epochs between evaluations; 0: only after the last epoch
    eval_interval: int = field(default=0, metadata=within(COUNT_0))
    # epochs between kept epoch_<N>.pth copies (mmcv's CheckpointHook interval; the last epoch's is always kept);
    # 0: latest.pth alone. latest.pth (what --resume reads) is written every epoch either way
    checkpoint_interval: int = field(default=1, metadata=within(COUNT_0))
    evaluate: bool = True  # False: no evaluation at all
    log_interval: int = field(default=10, metadata=within(COUNT))
    workers: int = field(default=0, metadata=within(COUNT_0))
    device: str | None = None  # None: cuda if available, else cpu
    amp: str = "none"  # 'fp16' or 'bf16' autocast on CUDA ('fp16' with loss scaling)
    resume: bool = False
    load_from: str | None = None  # initial weights (mmdet's load_from): every tensor whose name and shape match
    # ImageNet backbone weights (mmdet's ``pretrained``): a pycls checkpoint or a converted one; None: the config's
    # ``backbone.pretrained`` when that is a local file (an open-mmlab:// name is never downloaded)
    pretrained: str | None = None
    progress: bool = True

    def __post_init__(self):
        """Every setting checked here, once, for the command line and the Python API alike."""
        check_fields(self)
        if self.device is not None:
            check_device(self.device)
        if Path(self.work_dir).is_file():
            raise RegNetExploreError(f"work_dir {self.work_dir}: is a file; give the folder to write the run to")
        if len(self.translation_std) != 3 or not all(NON_NEGATIVE.contains(s) for s in self.translation_std):
            raise RegNetExploreError(f"translation_std must be three stds >= 0, got {self.translation_std!r}")
        choices = {"crop_placement": ("center", "random", "objects"), "lr_schedule": ("step", "cosine"),
                   "amp": ("none", "fp16", "bf16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RegNetExploreError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


@dataclass
class TrainResult:
    work_dir: Path
    checkpoint: Path
    history: list[dict] = field(default_factory=list)  # the JSON log records (train and val)


class TrainingDiverged(RegNetExploreError):
    """The training loss became NaN or infinite."""


class TrainingSet(torch.utils.data.Dataset):
    """Samples of a loader with the reference augmentation, seeded per (seed, epoch, index). Ground truth of classes
    the detector does not predict (a class subset, e.g. a car-only proxy) is dropped, labels are the detector's."""

    def __init__(self, data: DetectionData, cfg: DetectorConfig, seed: int, augment_cfg: AugmentConfig | None):
        self.data, self.cfg, self.seed, self.augment_cfg, self.epoch = data, cfg, seed, augment_cfg, 0
        self.labels = label_map(data.class_names, cfg.class_names)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.data.sample(index)
        labels = self.labels[s.gt_labels]
        keep = labels >= 0
        sample = Sample3D(s.network_points(), s.gt_boxes[keep, : self.cfg.code_size], labels[keep])
        if self.augment_cfg is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample = augment(sample, self.augment_cfg, self.cfg.point_cloud_range, rng)
        return (torch.from_numpy(np.ascontiguousarray(sample.points, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(sample.boxes, dtype=np.float32)),
                torch.from_numpy(np.asarray(sample.labels, dtype=np.int64)))


class EpochBatches(torch.utils.data.Sampler):
    """This rank's batches of an epoch: global batches of ``batch * world`` from a (seed, epoch) permutation."""

    def __init__(self, n: int, batch: int, env: DistEnv, seed: int, max_batches: int | None = None):
        if n < batch * env.world_size:
            raise RegNetExploreError(f"{n} training samples are fewer than one global batch "
                                     f"({batch} x {env.world_size} processes)")
        self.n, self.batch, self.env, self.seed, self.epoch = n, batch, env, seed, 0
        self.num_batches = n // (batch * env.world_size)
        if max_batches is not None:
            self.num_batches = min(self.num_batches, max_batches)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        g = self.batch * self.env.world_size
        for b in range(self.num_batches):
            start = b * g + self.env.rank * self.batch
            yield order[start:start + self.batch].tolist()


def _collate(items):
    return [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]


def _log_line(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def load_matching(model: torch.nn.Module, path: str | Path) -> tuple[int, list[str]]:
    """Copy the checkpoint's tensors whose name and shape match ``model``'s (e.g. a backbone and neck trained on
    another dataset); returns (tensors loaded, names skipped)."""
    state = read_checkpoint(path).state
    own = model.state_dict()
    match = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not any(k.endswith(("weight", "bias")) for k in match):
        raise RegNetExploreError(f"{path}: no parameter matches this detector by name and shape")
    model.load_state_dict(match, strict=False)
    return len(match), sorted(set(own) - set(match))


def init_pretrained(model: PointPillars, path: str | None, report: bool = True) -> dict | None:
    """The backbone's initial weights as the reference sets them (mmdet's ``pretrained``, before ``load_from``).

    ``path`` (else the config's ``backbone.pretrained`` when it is a local file): a pycls or converted ImageNet
    checkpoint, loaded non-strictly into ``pts_backbone``; returns the log record of what loaded and what was skipped
    and why. A RegNet config whose reference starts from ImageNet weights (``open-mmlab://...``) and no file: one line
    on stderr (when ``report``) saying so and how to get them; None.
    """
    backbone = model.cfg.backbone
    wanted = backbone.pretrained if isinstance(backbone, RegNetBackboneConfig) else None  # SECOND: from scratch
    if path is None and wanted is not None and Path(wanted).is_file():
        path = wanted
    if path is not None:
        result = load_pretrained_backbone(model, path)
        return {"pretrained": str(path), "loaded": len(result.loaded), "skipped": [list(s) for s in result.skipped],
                "not_loaded": result.not_loaded}
    if report and wanted and wanted.startswith("open-mmlab://"):
        arch = wanted.removeprefix("open-mmlab://")
        try:
            pycls_file = zoo_entry(arch).url_path.rsplit("/", 1)[-1]
        except RegNetExploreError:
            pycls_file = f"the pycls ImageNet checkpoint of {arch}"
        print(f"note: mmdetection3d starts this backbone from ImageNet weights ({wanted}); training from random "
              f"initialisation. Nothing is downloaded: get {pycls_file} from pycls's model zoo and pass "
              f"--pretrained FILE (a .pyth, or its `regnet-explore convert` output)", file=sys.stderr)
    return None


def _default_data(cfg: DetectorConfig, train: TrainConfig) -> tuple[str, str | None]:
    if train.data is not None:
        return train.data, train.version
    return str(ensure_default_dataset(cfg.dataset)), train.version


def default_splits(cfg: DetectorConfig, train: TrainConfig, root: str,
                   version: str | None) -> tuple[str | None, str | None]:
    """(train, val) split names: the config's dataset defaults unless the run names them."""
    if cfg.dataset == "nuscenes" and version is None:  # as open_dataset picks it: the first version folder present
        version = next((v for v in NUSCENES_VERSIONS if (Path(root) / v).is_dir()), "v1.0-mini")
    return (train.train_split or training_split(cfg.dataset, version),
            train.val_split or validation_split(cfg.dataset, version))


def base_learning_rate(tc: TrainConfig, sched: ScheduleConfig, total_batch: int) -> float:
    """The run's learning rate before warm-up and decay: ``tc.lr`` or the recipe's 1e-3 whatever the batch
    (mmdetection3d's default), times ``total_batch`` / 32 with ``auto_scale_lr``."""
    lr = tc.lr if tc.lr is not None else sched.lr
    return sched.scaled_lr(total_batch, lr) if tc.auto_scale_lr else lr


# --- one step -------------------------------------------------------------------------------------------------------


@dataclass
class Step:
    """What one optimisation step needs: the model (``ddp``: its DistributedDataParallel wrapper, else the model),
    the optimizer, the fp16 loss scaler (None: none) and the recipe's target assignment, losses and gradient clip."""

    model: PointPillars
    optimizer: torch.optim.Optimizer
    cfg: DetectorConfig  # the classes and box code the losses are over
    device: torch.device
    grad_clip: float = ScheduleConfig.grad_clip
    ddp: torch.nn.Module | None = None
    scaler: torch.amp.GradScaler | None = None
    amp: str = "none"
    world_size: int = 1
    assign_cfg: AssignerConfig = field(default_factory=AssignerConfig)
    loss_cfg: LossConfig | None = None  # None: the recipe's, its code weights cut to the config's box code

    def __post_init__(self):
        self.ddp = self.ddp or self.model
        self.loss_cfg = self.loss_cfg or LossConfig(code_weights=LossConfig().code_weights[: self.cfg.code_size])


def step_losses(step: Step, clouds: list[torch.Tensor], boxes: list[torch.Tensor],
                labels: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The recipe's losses of one batch on ``step.device``: forward, anchor targets, focal / smooth-L1 / direction
    losses normalised by the positives of the global batch (so the step does not depend on how it is split)."""
    # mixed precision on CUDA only (TrainConfig.amp); CPU training stays fp32
    with autocast(step.device, step.amp if step.device.type == "cuda" and step.amp != "none" else "fp32"):
        cls, reg, dirs = step.ddp(clouds)  # per level: (B, A*C, h, w), (B, A*code, h, w), (B, A*2, h, w)
    head = step.model.pts_bbox_head
    anchors = torch.cat(head.anchors([c.shape[-2:] for c in cls], step.device), dim=0)
    targets = build_targets(anchors, boxes, labels, step.cfg.num_classes, step.assign_cfg, head.dir_offset,
                            head.dir_limit_offset)
    global_pos = global_sum(torch.tensor(float(targets.num_pos), device=step.device)).item()
    return detection_loss(cls, reg, dirs, targets, step.cfg.num_classes, step.loss_cfg,
                          normalizer=global_pos / step.world_size)


def step_update(step: Step, loss: torch.Tensor) -> float:
    """Backward, gradient clip (mmdet's max_norm 35) and the optimizer's step; returns the gradients' norm."""
    step.optimizer.zero_grad(set_to_none=True)
    if step.scaler is not None:
        step.scaler.scale(loss).backward()
        step.scaler.unscale_(step.optimizer)
    else:
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(step.model.parameters(), step.grad_clip)
    if step.scaler is not None:
        step.scaler.step(step.optimizer)
        step.scaler.update()
    else:
        step.optimizer.step()
    return float(grad_norm)


def train_step(step: Step, clouds: list[torch.Tensor], boxes: list[torch.Tensor],
               labels: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
    """One optimisation step on a batch already on the device: (the losses and their sum ``loss``, detached;
    the gradients' norm). A loss that is not finite raises :class:`TrainingDiverged` before any update."""
    losses = step_losses(step, clouds, boxes, labels)
    loss = sum(losses.values())
    if not torch.isfinite(loss):  # diverged: stop rather than train on NaN (a sweep records the failure)
        raise TrainingDiverged(f"{step.cfg.name}: loss is {loss.item()}")
    grad_norm = step_update(step, loss)
    return {**{k: v.detach() for k, v in losses.items()}, "loss": loss.detach()}, grad_norm


# --- one run --------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """A training run between its epochs: the settings, the data, the step and where the run stands."""

    tc: TrainConfig
    env: DistEnv
    full_cfg: DetectorConfig  # the geometry the weights are for: checkpoints and evaluation see it
    cfg: DetectorConfig  # the training geometry: a centred crop, else full_cfg
    windows: bool  # a window of the full range each batch (crop placement 'random' or 'objects')
    root: str
    version: str | None
    val_split: str | None
    dataset: TrainingSet
    sampler: EpochBatches
    loader: torch.utils.data.DataLoader
    step: Step
    sched: ScheduleConfig
    base_lr: float
    on_log: Callable[[dict], None] | None = None
    history: list[dict] = field(default_factory=list)
    val_data: DetectionData | None = None  # opened at the first evaluation, kept for the next
    start_epoch: int = 0
    iteration: int = 0

    @property
    def work_dir(self) -> Path:
        return Path(self.tc.work_dir)

    @property
    def latest(self) -> Path:
        return self.work_dir / "latest.pth"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "train.log.json"

    def emit(self, record: dict) -> None:
        self.history.append(record)
        if self.env.is_main:
            _log_line(self.log_path, record)
            if self.on_log:
                self.on_log(record)


def _device_and_env(tc: TrainConfig) -> tuple[torch.device, DistEnv]:
    device = torch.device(tc.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    env = init_distributed(device)
    if env.distributed and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    return device, env


def build_run(tc: TrainConfig, on_log: Callable[[dict], None] | None = None) -> Run:
    """The data, model, optimizer and schedule of ``tc``, before any checkpoint is read."""
    device, env = _device_and_env(tc)
    full_cfg = get_config(tc.detector) if isinstance(tc.detector, str) else tc.detector
    windows = tc.crop is not None and tc.crop_placement != "center"
    cfg = crop_config(full_cfg, tc.crop) if tc.crop is not None else full_cfg
    batch = tc.batch_size or cfg.samples_per_gpu
    sched = ScheduleConfig(epochs=tc.epochs, warmup_iters=tc.warmup_iters, policy=tc.lr_schedule,
                           decay_epochs=tuple(round(e * tc.epochs / 24) for e in (20, 23)))
    base_lr = base_learning_rate(tc, sched, batch * env.world_size)
    root, version = _default_data(cfg, tc)
    train_split, val_split = default_splits(cfg, tc, root, version)
    train_data = open_dataset(cfg.dataset, root, version, train_split, sweeps=tc.sweeps)
    # with random windows the augmentation keeps the full range; the window's voxelizer cuts it
    dataset = TrainingSet(train_data, full_cfg if windows else cfg, tc.seed,
                          AugmentConfig(translation_std=tuple(tc.translation_std),
                                        flip_ratio_vertical=tc.flip_vertical))
    sampler = EpochBatches(len(dataset), batch, env, tc.seed, tc.max_iters_per_epoch)
    sched = dataclasses.replace(sched, total_iters=tc.epochs * len(sampler))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=_collate,
                                         num_workers=tc.workers, persistent_workers=False)
    torch.manual_seed(tc.seed if tc.init_seed is None else tc.init_seed)
    model = PointPillars(cfg).to(device)
    model.set_precision("fp32")  # the detector's inference autocast; training follows tc.amp (with loss scaling)
    if env.distributed:
        model = convert_batchnorm(model).to(device)
    model.train()
    scaler = torch.amp.GradScaler("cuda", init_scale=32.0) if device.type == "cuda" and tc.amp == "fp16" else None
    step = Step(model, make_optimizer(model, sched, base_lr), cfg, device, sched.grad_clip, scaler=scaler,
                amp=tc.amp, world_size=env.world_size)
    return Run(tc, env, full_cfg, cfg, windows, root, version, val_split, dataset, sampler, loader, step, sched,
               base_lr, on_log)


def start(run: Run) -> None:
    """Resume from ``latest.pth`` (one read: weights, optimizer, epoch and iteration) or initialise the weights
    (ImageNet backbone, ``load_from``); then the log: cut back to the checkpoint, or begun with the run's record."""
    tc, env, model = run.tc, run.env, run.step.model
    resumed = tc.resume and run.latest.exists()
    # with --load-from the backbone comes from that checkpoint: no note about random initialisation
    pretrained = None if resumed else init_pretrained(model, tc.pretrained, env.is_main and tc.load_from is None)
    loaded = None if resumed or tc.load_from is None else load_matching(model, tc.load_from)
    if resumed:
        ckpt = read_checkpoint(run.latest, map_location=run.step.device)
        model.load_state_dict(ckpt.state)
        if "optimizer" in ckpt.extra:
            run.step.optimizer.load_state_dict(ckpt.extra["optimizer"])
        run.start_epoch, run.iteration = int(ckpt.meta["epoch"]), int(ckpt.meta["iter"])
    if env.distributed:
        run.step.ddp = DistributedDataParallel(model)
    if env.is_main:
        run.work_dir.mkdir(parents=True, exist_ok=True)
    if env.is_main and resumed and run.log_path.exists():  # records a killed run logged after its checkpoint go
        trim_log(run.log_path, run.start_epoch)
    if env.is_main and not (tc.resume and run.log_path.exists()):
        run.log_path.unlink(missing_ok=True)
        run.emit({"env_info": f"python {platform.python_version()}, torch {torch.__version__}, device "
                              f"{run.step.device}, world size {env.world_size}", "seed": tc.seed,
                  "config": run.cfg.name, "train": dataclasses.asdict(tc)})
        if pretrained is not None:
            run.emit(pretrained)
        if loaded is not None:
            run.emit({"load_from": tc.load_from, "loaded": loaded[0], "skipped": loaded[1]})


def _set_window(run: Run, epoch: int, i: int, boxes: list[torch.Tensor]) -> None:
    """The batch's training window: one anywhere in the range per global batch (the same on every rank), or
    around a box of this rank's batch."""
    rng = np.random.default_rng([run.tc.seed, epoch, i, 1])
    if run.tc.crop_placement == "random":
        run.step.model.set_geometry(random_window(run.full_cfg, run.tc.crop, rng))
    else:
        centres = torch.cat([b[:, :2] for b in boxes]).numpy().astype(np.float64)
        run.step.model.set_geometry(object_window(run.full_cfg, run.tc.crop, centres, rng))


def train_epoch(run: Run, epoch: int) -> None:
    """The epoch's steps, each at its learning rate and window, logged every ``log_interval`` iterations (means
    over the iterations and the ranks)."""
    tc, step, device = run.tc, run.step, run.step.device
    run.dataset.epoch = run.sampler.epoch = epoch
    bar = _progress(tc.progress and run.env.is_main, len(run.sampler), f"epoch {epoch + 1}/{tc.epochs}")
    window: dict[str, list[float]] = {}
    t_data = time.perf_counter()
    for i, (points, boxes, labels) in enumerate(run.loader):
        data_time = time.perf_counter() - t_data
        lr = lr_at(run.sched, run.base_lr, epoch, run.iteration)
        for group in step.optimizer.param_groups:
            group["lr"] = lr
        if run.windows:
            _set_window(run, epoch, i, boxes)
        clouds = [p.to(device, non_blocking=True) for p in points]
        try:
            values, grad_norm = train_step(step, clouds, [b.to(device) for b in boxes],
                                           [lab.to(device) for lab in labels])
        except TrainingDiverged as e:
            raise TrainingDiverged(f"{e} at iteration {run.iteration + 1} (epoch {epoch + 1}); lower the learning "
                                   "rate or check the data") from None
        run.iteration += 1
        for k, v in values.items():  # mean over ranks for the log
            window.setdefault(k, []).append(global_sum(v.float()).item() / run.env.world_size)
        window.setdefault("grad_norm", []).append(grad_norm)
        window.setdefault("data_time", []).append(data_time)
        window.setdefault("time", []).append(time.perf_counter() - t_data)
        if (i + 1) % tc.log_interval == 0 or i + 1 == len(run.sampler):
            run.emit({"mode": "train", "epoch": epoch + 1, "iter": i + 1, "lr": lr, "memory": _memory_mb(device),
                      **{k: float(np.mean(v)) for k, v in window.items()}})
            window = {}
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss'].item():.3f}", lr=f"{lr:.2e}")
        t_data = time.perf_counter()
    if bar is not None:
        bar.close()
    if run.windows:  # checkpoints and evaluation see the full range (the config the weights are for)
        step.model.set_geometry(run.full_cfg)


def save_epoch(run: Run, epoch: int) -> None:
    """``latest.pth`` (weights, optimizer, where the run stands), and a kept ``epoch_<N>.pth`` when due."""
    tc = run.tc
    meta = {"epoch": epoch + 1, "iter": run.iteration, "seed": tc.seed, "train": dataclasses.asdict(tc)}
    save_checkpoint(run.step.model, run.latest, meta=meta, extra={"optimizer": run.step.optimizer.state_dict()})
    if tc.checkpoint_interval and (epoch + 1 == tc.epochs or (epoch + 1) % tc.checkpoint_interval == 0):
        with atomic_write(run.work_dir / f"epoch_{epoch + 1}.pth") as tmp:
            tmp.write_bytes(run.latest.read_bytes())


def evaluate_epoch(run: Run, epoch: int) -> None:
    """The official metric on the validation split, logged as a ``val`` record. A model trained on a centred crop
    is scored on the objects inside it, one trained on windows on the whole range."""
    if run.val_data is None:
        run.val_data = open_dataset(run.cfg.dataset, run.root, run.version, run.val_split, sweeps=run.tc.sweeps)
    inference = copy.deepcopy(run.step.model).fuse()  # the training model keeps its BatchNorm
    metrics = evaluate_model(inference, run.val_data, run.work_dir / f"eval_epoch_{epoch + 1}",
                             class_range=None if run.windows else run.tc.crop)
    run.emit({"mode": "val", "epoch": epoch + 1, "iter": run.iteration, **flat_metrics(metrics)})


def train(tc: TrainConfig, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Run (or resume) a training run; returns the last checkpoint and the log records."""
    run = build_run(tc, on_log)
    start(run)
    for epoch in range(run.start_epoch, tc.epochs):
        train_epoch(run, epoch)
        last = epoch + 1 == tc.epochs
        if run.env.is_main:
            save_epoch(run, epoch)
        if run.env.is_main and tc.evaluate and (last or (tc.eval_interval and (epoch + 1) % tc.eval_interval == 0)):
            evaluate_epoch(run, epoch)
        if run.env.distributed:
            torch.distributed.barrier()
    if run.env.is_main:
        plot_log(run.log_path, run.work_dir / "curves.png")
    return TrainResult(run.work_dir, run.latest, run.history)


def _memory_mb(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / 2**20)
    with open("/proc/self/status") as f:  # peak resident set size on Linux
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


__all__ = ["Run", "Step", "TrainConfig", "TrainResult", "TrainingDiverged", "build_run", "default_splits",
           "evaluate_epoch", "init_pretrained", "save_epoch", "start", "step_losses", "step_update", "train",
           "train_epoch", "train_step"]
