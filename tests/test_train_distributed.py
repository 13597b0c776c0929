"""Synchronised batch norm across processes (gloo on CPU) equals one process on the whole batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from regnet_explore.train.distributed import GlobalBatchNorm, convert_batchnorm

from .helpers import free_port


def _worker(rank: int, port: int, x: torch.Tensor, split: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    bn = convert_batchnorm(torch.nn.BatchNorm1d(x.shape[1], momentum=0.01))
    part = (x[:split] if rank == 0 else x[split:]).clone().requires_grad_(True)
    y = bn(part)
    (y * torch.arange(1.0, x.shape[1] + 1)).sum().backward()  # any non-trivial upstream gradient
    dist.all_reduce(bn.weight.grad)  # what DDP would do (sum; DDP averages, sums keep the test simple)
    dist.all_reduce(bn.bias.grad)
    out[rank] = {"y": y.detach(), "gx": part.grad, "gw": bn.weight.grad, "mean": bn.running_mean.clone(),
                 "var": bn.running_var.clone()}
    dist.destroy_process_group()


@pytest.mark.slow
def test_global_batchnorm_two_processes_equal_one():
    torch.manual_seed(1)
    x = torch.randn(23, 5) * 3 + 1  # uneven split: 7 rows on one rank, 16 on the other
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(free_port(), x, 7, out), nprocs=2, join=True)
    ref = torch.nn.BatchNorm1d(5, momentum=0.01)
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * torch.arange(1.0, 6)).sum().backward()
    assert torch.allclose(torch.cat([out[0]["y"], out[1]["y"]]), y, atol=1e-5)
    assert torch.allclose(torch.cat([out[0]["gx"], out[1]["gx"]]), xr.grad, atol=1e-5)
    assert torch.allclose(out[0]["gw"], ref.weight.grad, atol=1e-4)
    assert torch.allclose(out[0]["mean"], ref.running_mean, atol=1e-6)
    assert torch.allclose(out[1]["var"], ref.running_var, atol=1e-6)


def _step(bn: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> dict[str, torch.Tensor]:
    """One training step: the output and the gradients of the input, weight and bias (then cleared)."""
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * upstream).sum().backward()
    out = {"output": y.detach(), "input grad": x.grad, "weight grad": bn.weight.grad, "bias grad": bn.bias.grad}
    bn.weight.grad = bn.bias.grad = None
    return out


def test_global_batchnorm_alone_is_plain_bn():
    """On one process a converted BN or SyncBN is torch's BatchNorm2d: outputs, gradients, running statistics over
    two training steps and the eval-mode output, with non-default eps and momentum and non-trivial state."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.05),
                                torch.nn.SyncBatchNorm(4, eps=1e-2, momentum=0.3))
    refs = []
    for bn in model[1:]:
        with torch.no_grad():
            for t in (bn.weight, bn.bias, bn.running_mean):
                t.copy_(torch.randn(4, generator=g))
            bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        refs.append(torch.nn.BatchNorm2d(4, eps=bn.eps, momentum=bn.momentum))
        refs[-1].load_state_dict(bn.state_dict())
    keys = [list(bn.state_dict()) for bn in model[1:]]
    converted = convert_batchnorm(model)
    for bn, ref, names in zip(converted[1:], refs, keys, strict=True):
        assert isinstance(bn, GlobalBatchNorm) and list(bn.state_dict()) == names and bn.training
        for _ in range(2):
            x, upstream = torch.randn(6, 4, 5, 5, generator=g) * 3 + 1, torch.randn(6, 4, 5, 5, generator=g)
            got, want = _step(bn, x, upstream), _step(ref, x, upstream)
            for name in want:
                torch.testing.assert_close(got[name], want[name], msg=lambda m, name=name: f"{name}: {m}")
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(bn, name), getattr(ref, name), msg=lambda m, name=name: f"{name}: {m}")
        assert int(bn.num_batches_tracked) == 2
        x = torch.randn(6, 4, 5, 5, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(bn.eval()(x), ref.eval()(x))


def test_a_command_in_a_process_group_ends_it(capsys):
    # torchrun's ranks must end their group before exiting: left to interpreter exit, gloo can abort a rank
    # ("terminate called without an active exception") after the job's work is done
    from regnet_explore.cli import main

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        assert main(["zoo"]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
