"""mmdet3d ``SECOND`` backbone: stages of 3x3 conv + BN + ReLU (keys ``blocks.{i}.{j}``).

Stage i: a stride-``layer_strides[i]`` conv from the previous width to ``out_channels[i]``, then
``layer_nums[i]`` stride-1 convs; inside each ``nn.Sequential`` index 3k is a conv, 3k+1 its BN, 3k+2 a ReLU.
Input (B, C_in, H, W) -> tuple of one (B, out_channels[i], H / prod(strides[:i+1]), ...) map per stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from regnet_explore.regnet.complexity import Complexity, constructor_args


class SECOND(nn.Module):
    def __init__(self, in_channels: int = 64, out_channels: Sequence[int] = (64, 128, 256),
                 layer_nums: Sequence[int] = (3, 5, 5), layer_strides: Sequence[int] = (2, 2, 2),
                 eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, list(out_channels)
        self.layer_nums, self.layer_strides = list(layer_nums), list(layer_strides)
        widths = [in_channels, *out_channels]
        blocks = []
        for i, num in enumerate(layer_nums):
            layers: list[nn.Module] = []
            for j in range(num + 1):
                w_in = widths[i] if j == 0 else widths[i + 1]
                stride = layer_strides[i] if j == 0 else 1
                layers += [nn.Conv2d(w_in, widths[i + 1], 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(widths[i + 1], eps=eps, momentum=momentum), nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():  # mmdet3d's init_cfg: Kaiming (fan_out) on convs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def complexity(cx: Complexity, sizes: Sequence[tuple[int, int]], *args, **kwargs) -> list[tuple[int, int]]:
        """Adds FLOPs/params/acts on the one input map of ``sizes`` for the constructor's arguments; returns each
        stage's output size."""
        a = constructor_args(SECOND, args, kwargs)
        ((cx.h, cx.w),) = sizes
        widths = [a["in_channels"], *a["out_channels"]]
        out = []
        for i, num in enumerate(a["layer_nums"]):
            cx.conv(widths[i], widths[i + 1], 3, a["layer_strides"][i], 1).norm(widths[i + 1])
            for _ in range(num):
                cx.conv(widths[i + 1], widths[i + 1], 3, 1, 1).norm(widths[i + 1])
            out.append((cx.h, cx.w))
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)
