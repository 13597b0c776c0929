"""The training engine: the reference recipe, one process or many (torchrun), resumable, logged.

Determinism is by construction: the sample order of epoch e is a permutation seeded by (seed, e), each sample's
augmentation by (seed, e, index). A run resumed from the checkpoint of epoch e therefore replays epochs e+1...
exactly as an uninterrupted run does, and N processes with the global batch of one see the same data. Losses are
normalised by the positives of the *global* batch and batch norms synchronise exact global statistics, so the
parameters after a step do not depend on how the batch was split across processes.
"""

from __future__ import annotations

import contextlib
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
from regnet_explore.detection.checkpoint import load_pretrained_backbone, read_checkpoint, save_checkpoint
from regnet_explore.detection.configs import DetectorConfig, RegNetBackboneConfig, get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.window import crop_config, object_window, random_window
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model, flat_metrics, label_map
from regnet_explore.io import atomic_write
from regnet_explore.parallel import global_sum
from regnet_explore.regnet.zoo import zoo_entry
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
    epochs: int = 24
    batch_size: int | None = None  # per process; None: the config's samples_per_gpu
    lr: float | None = None  # None: the reference's 1e-3, whatever the batch (mmdetection3d's default)
    auto_scale_lr: bool = False  # scale lr linearly by the total batch over 32 (mmdetection3d's auto_scale_lr)
    lr_schedule: str = "step"  # 'step': x0.1 at epochs 20 and 23 of 24 (the reference); 'cosine': to 0 (pycls)
    warmup_iters: int = 1000
    seed: int = 0  # data order, augmentation, windows, and the initial weights unless init_seed is given
    init_seed: int | None = None  # the initial weights' seed alone (None: seed): same data, other initialization
    crop: float | None = None  # half-extent (m) of a cropped square BEV range, e.g. 25; None: full range
    # 'center': the crop around the ego, scored inside it; 'random': each batch a window anywhere in the full
    # range (absolute coordinates kept, so the weights see every distance), scored on the full range; 'objects':
    # as 'random', but each window around a ground-truth box of the batch
    crop_placement: str = "center"
    # std (m) of a global shift of each training cloud per axis (GlobalRotScaleTrans's translation_std); a z shift
    # makes the network read a box's height off its points instead of a height learnt per place (the reference: 0)
    translation_std: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # probability of RandomFlip3D's vertical BEV flip (x -> -x; the reference: 0): the ground's tilt in the sensor
    # frame then no longer tells the height from the place
    flip_vertical: float = 0.0
    max_iters_per_epoch: int | None = None
    sweeps: int = 10
    eval_interval: int = 0  # epochs between evaluations; 0: only after the last epoch
    # epochs between kept epoch_<N>.pth copies (mmcv's CheckpointHook interval; the last epoch's is always kept);
    # 0: latest.pth alone. latest.pth (what --resume reads) is written every epoch either way
    checkpoint_interval: int = 1
    evaluate: bool = True  # False: no evaluation at all
    log_interval: int = 10
    workers: int = 0
    device: str | None = None  # None: cuda if available, else cpu
    amp: str = "none"  # 'fp16' or 'bf16' autocast on CUDA ('fp16' with loss scaling)
    resume: bool = False
    load_from: str | None = None  # initial weights (mmdet's load_from): every tensor whose name and shape match
    # ImageNet backbone weights (mmdet's ``pretrained``): a pycls checkpoint or a converted one; None: the config's
    # ``backbone.pretrained`` when that is a local file (an open-mmlab:// name is never downloaded)
    pretrained: str | None = None
    progress: bool = True


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
    state, _ = read_checkpoint(path)
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


def _autocast(device: torch.device, amp: str):
    if device.type == "cuda" and amp in ("fp16", "bf16"):
        return torch.autocast("cuda", dtype=torch.float16 if amp == "fp16" else torch.bfloat16)
    return contextlib.nullcontext()


def base_learning_rate(tc: TrainConfig, sched: ScheduleConfig, total_batch: int) -> float:
    """The run's learning rate before warm-up and decay: ``tc.lr`` or the recipe's 1e-3 whatever the batch
    (mmdetection3d's default), times ``total_batch`` / 32 with ``auto_scale_lr``."""
    lr = tc.lr if tc.lr is not None else sched.lr
    return sched.scaled_lr(total_batch, lr) if tc.auto_scale_lr else lr


def train(tc: TrainConfig, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Run (or resume) a training run; returns the last checkpoint and the log records."""
    device = torch.device(tc.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    env = init_distributed(device)
    if env.distributed and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    full_cfg = get_config(tc.detector) if isinstance(tc.detector, str) else tc.detector
    if tc.crop_placement not in ("center", "random", "objects"):
        raise RegNetExploreError(f"crop_placement must be 'center', 'random' or 'objects', got {tc.crop_placement!r}")
    windows = tc.crop is not None and tc.crop_placement != "center"
    det_cfg = crop_config(full_cfg, tc.crop) if tc.crop is not None else full_cfg
    batch = tc.batch_size or det_cfg.samples_per_gpu
    if tc.lr_schedule not in ("step", "cosine"):
        raise RegNetExploreError(f"lr_schedule must be 'step' or 'cosine', got {tc.lr_schedule!r}")
    if not (isinstance(tc.checkpoint_interval, int) and tc.checkpoint_interval >= 0):
        raise RegNetExploreError(f"checkpoint_interval must be a whole number of epochs >= 0, got "
                                 f"{tc.checkpoint_interval!r}")
    sched = ScheduleConfig(epochs=tc.epochs, warmup_iters=tc.warmup_iters, policy=tc.lr_schedule,
                           decay_epochs=tuple(round(e * tc.epochs / 24) for e in (20, 23)))
    base_lr = base_learning_rate(tc, sched, batch * env.world_size)

    root, version = _default_data(det_cfg, tc)
    train_split, val_split = default_splits(det_cfg, tc, root, version)
    train_data = open_dataset(det_cfg.dataset, root, version, train_split, sweeps=tc.sweeps)
    # with random windows the augmentation keeps the full range; the window's voxelizer cuts it
    dataset = TrainingSet(train_data, full_cfg if windows else det_cfg, tc.seed,
                           AugmentConfig(translation_std=tuple(tc.translation_std),
                                         flip_ratio_vertical=tc.flip_vertical))
    sampler = EpochBatches(len(dataset), batch, env, tc.seed, tc.max_iters_per_epoch)
    sched = dataclasses.replace(sched, total_iters=tc.epochs * len(sampler))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=_collate,
                                         num_workers=tc.workers, persistent_workers=False)

    torch.manual_seed(tc.seed if tc.init_seed is None else tc.init_seed)
    model = PointPillars(det_cfg).to(device)
    model.set_precision("fp32")  # the detector's inference autocast; training follows tc.amp (with loss scaling)
    if env.distributed:
        model = convert_batchnorm(model).to(device)
    model.train()
    optimizer = make_optimizer(model, sched, base_lr)
    scaler = torch.amp.GradScaler("cuda", init_scale=32.0) if device.type == "cuda" and tc.amp == "fp16" else None
    work_dir = Path(tc.work_dir)
    start_epoch, iteration = 0, 0
    latest = work_dir / "latest.pth"
    resumed = tc.resume and latest.exists()
    # with --load-from the backbone comes from that checkpoint: no note about random initialisation
    pretrained = None if resumed else init_pretrained(model, tc.pretrained, env.is_main and tc.load_from is None)
    loaded = None if resumed or tc.load_from is None else load_matching(model, tc.load_from)
    if resumed:
        state, meta = read_checkpoint(latest)
        model.load_state_dict(state)
        ckpt = torch.load(latest, map_location=device, weights_only=True)
        if "optimizer" in ckpt:
            optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, iteration = int(meta["epoch"]), int(meta["iter"])
    ddp = DistributedDataParallel(model) if env.distributed else model
    if env.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "train.log.json"
    history: list[dict] = []

    def emit(record: dict) -> None:
        history.append(record)
        if env.is_main:
            _log_line(log_path, record)
            if on_log:
                on_log(record)

    if env.is_main and resumed and log_path.exists():  # records a killed run logged after its checkpoint go
        trim_log(log_path, start_epoch)
    if env.is_main and not (tc.resume and log_path.exists()):
        log_path.unlink(missing_ok=True)
        emit({"env_info": f"python {platform.python_version()}, torch {torch.__version__}, device {device}, "
                          f"world size {env.world_size}", "seed": tc.seed, "config": det_cfg.name,
              "train": dataclasses.asdict(tc)})
        if pretrained is not None:
            emit(pretrained)
        if loaded is not None:
            emit({"load_from": tc.load_from, "loaded": loaded[0], "skipped": loaded[1]})
    assign_cfg = AssignerConfig()
    loss_cfg = LossConfig(code_weights=LossConfig().code_weights[: det_cfg.code_size])
    head = model.pts_bbox_head
    val_data = None
    for epoch in range(start_epoch, tc.epochs):
        dataset.epoch = sampler.epoch = epoch
        bar = _progress(tc.progress and env.is_main, len(sampler), f"epoch {epoch + 1}/{tc.epochs}")
        window: dict[str, list[float]] = {}
        t_data = time.perf_counter()
        for i, (points, boxes, labels) in enumerate(loader):
            data_time = time.perf_counter() - t_data
            lr = lr_at(sched, base_lr, epoch, iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            window_rng = np.random.default_rng([tc.seed, epoch, i, 1])
            if windows and tc.crop_placement == "random":  # one window per global batch, the same on every rank
                model.set_geometry(random_window(full_cfg, tc.crop, window_rng))
            elif windows:  # around a box of this rank's batch
                centres = torch.cat([b[:, :2] for b in boxes]).numpy().astype(np.float64)
                model.set_geometry(object_window(full_cfg, tc.crop, centres, window_rng))
            clouds = [p.to(device, non_blocking=True) for p in points]
            boxes = [b.to(device) for b in boxes]
            labels = [lab.to(device) for lab in labels]
            with _autocast(device, tc.amp):
                cls, reg, dirs = ddp(clouds)
            anchors = torch.cat(head.anchors([c.shape[-2:] for c in cls], device), dim=0)
            targets = build_targets(anchors, boxes, labels, det_cfg.num_classes, assign_cfg, head.dir_offset,
                                    head.dir_limit_offset)
            global_pos = global_sum(torch.tensor(float(targets.num_pos), device=device)).item()
            losses = detection_loss(cls, reg, dirs, targets, det_cfg.num_classes, loss_cfg,
                                    normalizer=global_pos / env.world_size)
            loss = sum(losses.values())
            if not torch.isfinite(loss):  # diverged: stop rather than train on NaN (a sweep records the failure)
                raise TrainingDiverged(f"{det_cfg.name}: loss is {loss.item()} at iteration {iteration + 1} "
                                       f"(epoch {epoch + 1}); lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), sched.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            iteration += 1
            values = {k: v.detach() for k, v in losses.items()}
            values["loss"] = loss.detach()
            for k, v in values.items():  # mean over ranks for the log
                window.setdefault(k, []).append(global_sum(v.float()).item() / env.world_size)
            window.setdefault("grad_norm", []).append(float(grad_norm))
            window.setdefault("data_time", []).append(data_time)
            window.setdefault("time", []).append(time.perf_counter() - t_data)
            if (i + 1) % tc.log_interval == 0 or i + 1 == len(sampler):
                record = {"mode": "train", "epoch": epoch + 1, "iter": i + 1, "lr": lr,
                          "memory": _memory_mb(device), **{k: float(np.mean(v)) for k, v in window.items()}}
                emit(record)
                window = {}
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
            t_data = time.perf_counter()
        if bar is not None:
            bar.close()
        if windows:  # checkpoints and evaluation see the full range (the config the weights are for)
            model.set_geometry(full_cfg)
        last = epoch + 1 == tc.epochs
        if env.is_main:
            meta = {"epoch": epoch + 1, "iter": iteration, "seed": tc.seed, "train": dataclasses.asdict(tc)}
            save_checkpoint(model, latest, meta=meta, extra={"optimizer": optimizer.state_dict()})
            if tc.checkpoint_interval and (last or (epoch + 1) % tc.checkpoint_interval == 0):
                with atomic_write(work_dir / f"epoch_{epoch + 1}.pth") as tmp:
                    tmp.write_bytes(latest.read_bytes())
        due = last or (tc.eval_interval and (epoch + 1) % tc.eval_interval == 0)
        if env.is_main and tc.evaluate and due:
            if val_data is None:
                val_data = open_dataset(det_cfg.dataset, root, version, val_split, sweeps=tc.sweeps)
            # a model trained on a centred crop is scored on the objects inside it, one trained on windows on all
            inference = copy.deepcopy(model).fuse()  # the training model keeps its BatchNorm
            metrics = evaluate_model(inference, val_data, work_dir / f"eval_epoch_{epoch + 1}",
                                     class_range=None if windows else tc.crop)
            del inference
            emit({"mode": "val", "epoch": epoch + 1, "iter": iteration, **flat_metrics(metrics)})
        if env.distributed:
            torch.distributed.barrier()
    if env.is_main:
        plot_log(log_path, work_dir / "curves.png")
    return TrainResult(work_dir, latest, history)


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


__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "crop_config", "default_splits", "init_pretrained",
           "random_window", "train"]
