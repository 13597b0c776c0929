"""The reference optimisation recipe: AdamW lr 1e-3, linear warm-up, step decay, gradient clipping; optional linear
LR scaling (mmdetection3d's ``auto_scale_lr``, off unless asked, base batch 32)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScheduleConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 35.0
    warmup_iters: int = 1000
    warmup_ratio: float = 1.0 / 1000
    epochs: int = 24
    decay_epochs: tuple[int, ...] = (20, 23)
    gamma: float = 0.1
    base_batch_size: int = 32  # mmdetection3d's auto_scale_lr base: the batch the lr is meant for
    policy: str = "step"  # 'step' (the reference: x gamma at decay_epochs) or 'cosine' (half a cosine to 0, pycls)
    total_iters: int = 0  # iterations of the whole run ('cosine' needs them)

    def scaled_lr(self, batch_size: int, lr: float | None = None) -> float:
        """``auto_scale_lr``: ``lr`` (default the recipe's) times the total batch size over ``base_batch_size``."""
        return (self.lr if lr is None else lr) * batch_size / self.base_batch_size


def lr_at(cfg: ScheduleConfig, base_lr: float, epoch: int, iteration: int) -> float:
    """mmcv's step policy (or pycls's cosine) with linear warm-up: ``iteration`` counts from 0 over the whole run."""
    if cfg.policy == "cosine":
        lr = 0.5 * base_lr * (1 + math.cos(math.pi * min(iteration / max(cfg.total_iters, 1), 1.0)))
    else:
        lr = base_lr * cfg.gamma ** sum(epoch >= e for e in cfg.decay_epochs)
    if iteration < cfg.warmup_iters:
        k = (1 - iteration / cfg.warmup_iters) * (1 - cfg.warmup_ratio)
        lr *= 1 - k
    return lr


def make_optimizer(model: torch.nn.Module, cfg: ScheduleConfig, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay)
