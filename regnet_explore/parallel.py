"""Batch statistics across processes, for batch norms that must see the whole distributed batch."""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_sum(stats: torch.Tensor) -> torch.Tensor:
    """Sum of ``stats`` over every process, differentiable (gradients reach every process's inputs); also used
    for plain counts and logged values.

    Identity when not running distributed.
    """
    if not distributed():
        return stats
    import torch.distributed.nn.functional as dist_fn

    with warnings.catch_warnings():  # deprecated in favour of a private API; still the differentiable one
        warnings.simplefilter("ignore", FutureWarning)
        return dist_fn.all_reduce(stats)


def moments(sum1: torch.Tensor, sum2: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(mean, biased variance, count) per channel from local sums of x and x², over all processes."""
    c = sum1.shape[0]
    stats = global_sum(torch.cat([sum1, sum2, count.reshape(1).to(sum1.dtype)]))
    total = stats[-1]
    mean = stats[:c] / total
    return mean, stats[c:2 * c] / total - mean * mean, total
