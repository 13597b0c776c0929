"""Argument types the subcommands share."""

from __future__ import annotations

import argparse

from regnet_explore.settings import arg
from regnet_explore.train.engine import TrainConfig


def int_list(text: str) -> tuple[int, ...]:
    """``64,64`` -> (64, 64)."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 64,64") from None


# the training recipe's options, which `train` and `sweep` share (TrainConfig fields)
RECIPE_OPTIONS = ("batch_size", "lr", "lr_schedule", "warmup_iters", "crop", "crop_placement", "sweeps", "pretrained")


def add_recipe_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, defaults: TrainConfig | None,
                         warmup_default: str) -> None:
    """The recipe's options, parsed with TrainConfig's domains; ``defaults`` None: each left None when not given (the
    caller fills it, e.g. a sweep from its preset)."""
    d = defaults
    p.add_argument("--batch-size", type=arg(TrainConfig, "batch_size"),
                   help="samples per iteration and process (default: the config's samples_per_gpu)")
    p.add_argument("--lr", type=arg(TrainConfig, "lr"),
                   help="base learning rate (default: the reference's 1e-3, whatever the batch)")
    p.add_argument("--warmup-iters", type=arg(TrainConfig, "warmup_iters"), default=d and d.warmup_iters,
                   help=f"linear warm-up iterations (default: {warmup_default})")
    p.add_argument("--lr-schedule", choices=["step", "cosine"], default=d and d.lr_schedule,
                   help="step: x0.1 at 20/24 and 23/24 of the epochs (the reference, default); cosine: half a "
                        "cosine to 0, as pycls's sweeps")
    p.add_argument("--crop", type=arg(TrainConfig, "crop"),
                   help="train on a cropped square BEV range of this half-extent (m)")
    p.add_argument("--crop-placement", choices=["center", "random", "objects"], default=d and d.crop_placement,
                   help="center: one crop around the ego, scored inside it (default); random: a window anywhere in "
                        "the full range per batch, scored on the full range; objects: as random, each window around "
                        "a ground-truth box of the batch")
    p.add_argument("--sweeps", type=arg(TrainConfig, "sweeps"), default=d and d.sweeps,
                   help="LiDAR sweeps merged into each key frame (default 10)")
    p.add_argument("--pretrained", metavar="FILE",
                   help="ImageNet backbone weights, as the reference starts RegNet configs: a pycls checkpoint "
                        "(.pyth) or its `regnet-explore convert` output, loaded where names and shapes match")
