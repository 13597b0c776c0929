"""Synchronised batch norm across processes (gloo on CPU) equals one process on the whole batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from regnet_explore.train.distributed import GlobalBatchNorm, convert_batchnorm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    mp.spawn(_worker, args=(_free_port(), x, 7, out), nprocs=2, join=True)
    ref = torch.nn.BatchNorm1d(5, momentum=0.01)
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y * torch.arange(1.0, 6)).sum().backward()
    assert torch.allclose(torch.cat([out[0]["y"], out[1]["y"]]), y, atol=1e-5)
    assert torch.allclose(torch.cat([out[0]["gx"], out[1]["gx"]]), xr.grad, atol=1e-5)
    assert torch.allclose(out[0]["gw"], ref.weight.grad, atol=1e-4)
    assert torch.allclose(out[0]["mean"], ref.running_mean, atol=1e-6)
    assert torch.allclose(out[1]["var"], ref.running_var, atol=1e-6)


def test_global_batchnorm_alone_is_plain_bn():
    bn2 = torch.nn.BatchNorm2d(4)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), bn2, torch.nn.SyncBatchNorm(4))
    ref = [m.state_dict() for m in model]
    converted = convert_batchnorm(model)
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2], GlobalBatchNorm)
    assert list(converted[1].state_dict()) == list(ref[1])
    x = torch.randn(2, 3, 8, 8)
    expected = torch.nn.functional.batch_norm(converted[0](x), torch.zeros(4), torch.ones(4), bn2.weight, bn2.bias,
                                              True, 0.1, bn2.eps)
    assert torch.allclose(converted[1](converted[0](x)), expected, atol=1e-6)
