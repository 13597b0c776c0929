"""Scale-out: torchrun environment, process groups (gloo on CPU, nccl on CUDA) and synchronized batch norm.

torch's ``SyncBatchNorm`` refuses CPU tensors, and mmdet3d's ``naiveSyncBN`` averages per-rank means as if every
rank had the same number of rows (pillar counts differ). :class:`GlobalBatchNorm` all-reduces sums, sums of squares
and counts instead, so N processes compute exactly the statistics one process would over the whole batch, on CPU and
CUDA alike. Its state_dict is that of plain BN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from regnet_explore.parallel import distributed, moments


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistEnv:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, ...), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return env


def leave_process_group() -> None:
    """Destroy this process's torchrun process group, if it joined one. Left to interpreter exit, a gloo group
    can abort the process ("terminate called without an active exception") after its work is done."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the union of every rank's batch (1d or 2d inputs); plain BN when alone or in eval."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and distributed()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        count = x.new_tensor(float(x.numel() // x.shape[1]))
        mean, var, total = moments(x.sum(dims), (x * x).sum(dims), count)
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * total / (total - 1).clamp(min=1)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps) * self.weight
        return x * scale.reshape(shape) + (self.bias - mean * scale).reshape(shape)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d/SyncBatchNorm by :class:`GlobalBatchNorm` with the same parameters and state."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        new.to(module.weight.device)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module
