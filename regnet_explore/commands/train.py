"""``regnet-explore train`` (and ``python -m regnet_explore.train`` for torchrun)."""

from __future__ import annotations

import argparse
import os

from regnet_explore.commands.arguments import add_recipe_arguments
from regnet_explore.settings import NON_NEGATIVE, arg
from regnet_explore.train.engine import TrainConfig, train


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("config", help="detector config name or alias (regnet-explore configs lists them)")
    p.add_argument("--data", metavar="DIR", help="dataroot (default: the synthetic mini set of the config's dataset)")
    p.add_argument("--version", help="dataset version (v1.0-mini, v1.0-trainval, v1.01-train)")
    p.add_argument("--epochs", type=arg(TrainConfig, "epochs"), default=d.epochs)
    add_recipe_arguments(p, d, f"{d.warmup_iters}")
    p.add_argument("--auto-scale-lr", action="store_true",
                   help="scale the lr linearly by the total batch (processes x batch) over 32, as mmdetection3d's "
                        "auto_scale_lr")
    p.add_argument("--work-dir", default=d.work_dir, metavar="OUT_DIR", help="where the checkpoints and the log go")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/latest.pth")
    p.add_argument("--load-from", metavar="FILE",
                   help="initial weights: every tensor of this checkpoint whose name and shape match")
    p.add_argument("--seed", type=arg(TrainConfig, "seed"), default=d.seed,
                   help="data order, augmentation and windows, and the initial weights unless --init-seed")
    p.add_argument("--init-seed", type=arg(TrainConfig, "init_seed"),
                   help="the initial weights' seed alone (default: --seed)")
    p.add_argument("--translation-std", type=NON_NEGATIVE.parse, nargs=3, default=d.translation_std,
                   metavar=("X", "Y", "Z"),
                   help="std (m) of a normal shift of each training cloud and its boxes (mmdet3d's GlobalRotScaleTrans "
                        "translation_std; the reference: 0 0 0); a z shift teaches box heights from the points")
    p.add_argument("--flip-vertical", type=arg(TrainConfig, "flip_vertical"), default=d.flip_vertical, metavar="RATIO",
                   help="probability of a vertical BEV flip, x -> -x (mmdet3d's RandomFlip3D flip_ratio_bev_vertical; "
                        "the reference: 0)")
    p.add_argument("--max-iters", type=arg(TrainConfig, "max_iters_per_epoch"),
                   help="at most this many iterations per epoch")
    p.add_argument("--eval-interval", type=arg(TrainConfig, "eval_interval"), default=d.eval_interval,
                   help="epochs between evaluations")
    p.add_argument("--checkpoint-interval", type=arg(TrainConfig, "checkpoint_interval"), default=d.checkpoint_interval,
                   metavar="EPOCHS",
                   help="keep epoch_N.pth every EPOCHS epochs and after the last (0: latest.pth alone, which "
                        "--resume reads and every epoch rewrites)")
    p.add_argument("--no-eval", action="store_true", help="skip evaluation")
    p.add_argument("--log-interval", type=arg(TrainConfig, "log_interval"), default=d.log_interval,
                   help="iterations between log records")
    p.add_argument("--workers", type=arg(TrainConfig, "workers"), default=d.workers)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", choices=["none", "fp16", "bf16"], default="none", help="mixed precision on CUDA")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    cfg = TrainConfig(detector=args.config, data=args.data, version=args.version, work_dir=args.work_dir,
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      auto_scale_lr=args.auto_scale_lr, lr_schedule=args.lr_schedule,
                      warmup_iters=args.warmup_iters,
                      seed=args.seed, init_seed=args.init_seed, crop=args.crop, crop_placement=args.crop_placement,
                      translation_std=tuple(args.translation_std), flip_vertical=args.flip_vertical,
                      max_iters_per_epoch=args.max_iters,
                      eval_interval=args.eval_interval, checkpoint_interval=args.checkpoint_interval,
                      evaluate=not args.no_eval, log_interval=args.log_interval,
                      sweeps=args.sweeps, workers=args.workers, device=args.device, amp=args.amp, resume=args.resume,
                      load_from=args.load_from, pretrained=args.pretrained,
                      progress=not args.no_progress)
    result = train(cfg)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    val = [r for r in result.history if r.get("mode") == "val"]
    print(f"checkpoint: {result.checkpoint}\nlog: {result.work_dir / 'train.log.json'}\n"
          f"curves: {result.work_dir / 'curves.png'}")
    if val:
        print("last evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in val[-1].items()
                                              if k not in ("mode", "epoch", "iter")))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_train_arguments(sub.add_parser("train", help="train a detector (the reference recipe; torchrun-ready)"))
