"""Necks on the backbone's multi-scale maps: mmdet ``FPN`` and mmdet3d ``SECONDFPN`` (same state_dict keys).

FPN: ``lateral_convs.{i}`` (1x1) and ``fpn_convs.{i}`` (3x3, pad 1) are ConvModules conv (no bias) -> ``bn`` ->
ReLU; top-down, each level adds the nearest-upsampled level above it. Out: one (B, C, H_i, W_i) map per input.
SECONDFPN: ``deblocks.{i}`` = ConvTranspose2d (kernel = stride, no bias) -> BN -> ReLU; outputs concatenated
into one (B, sum(out_channels), H_0 * s_0, W_0 * s_0) map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from regnet_explore.regnet.complexity import Complexity, constructor_args


class ConvModule(nn.Module):
    """mmcv ConvModule with a BN: keys ``conv.weight`` and ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, eps: float, momentum: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, eps: float = 1e-3,
                 momentum: float = 0.01):
        super().__init__()
        self.in_channels, self.out_channels = list(in_channels), out_channels
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, eps, momentum) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, eps, momentum)
                                       for _ in in_channels)
        for m in self.modules():  # mmdet FPN init: Xavier-uniform convs
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    @staticmethod
    def complexity(cx: Complexity, sizes: Sequence[tuple[int, int]], *args, **kwargs) -> list[tuple[int, int]]:
        """Adds FLOPs/params/acts on inputs of the given (h, w) for the constructor's arguments; returns the output
        sizes (the same)."""
        a = constructor_args(FPN, args, kwargs)
        out_channels = a["out_channels"]
        for c, (h, w) in zip(a["in_channels"], sizes, strict=True):
            cx.h, cx.w = h, w
            cx.conv(c, out_channels, 1).norm(out_channels)
            cx.conv(out_channels, out_channels, 3, 1, 1).norm(out_channels)
        return list(sizes)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode="nearest")
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=True)]


class SECONDFPN(nn.Module):
    def __init__(self, in_channels: Sequence[int] = (64, 128, 256), out_channels: Sequence[int] = (128, 128, 128),
                 upsample_strides: Sequence[int] = (1, 2, 4), eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.in_channels, self.out_channels = list(in_channels), list(out_channels)
        self.upsample_strides = [int(s) for s in upsample_strides]
        self.deblocks = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(c_in, c_out, s, stride=s, bias=False),
                          nn.BatchNorm2d(c_out, eps=eps, momentum=momentum), nn.ReLU(inplace=True))
            for c_in, c_out, s in zip(in_channels, out_channels, self.upsample_strides, strict=True))
        for m in self.modules():  # mmdet3d init: Kaiming on the transposed convs
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def complexity(cx: Complexity, sizes: Sequence[tuple[int, int]], *args, **kwargs) -> list[tuple[int, int]]:
        """Adds FLOPs/params/acts on inputs of the given (h, w) for the constructor's arguments; returns the size of
        the one concatenated map."""
        a = constructor_args(SECONDFPN, args, kwargs)
        out = []
        for c_in, c_out, s, (h, w) in zip(a["in_channels"], a["out_channels"], a["upsample_strides"], sizes,
                                          strict=True):
            cx.h, cx.w = h, w
            cx.conv_transpose(c_in, c_out, int(s), int(s)).norm(c_out)
            out.append((cx.h, cx.w))
        return out[:1]

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat([deblock(x) for deblock, x in zip(self.deblocks, feats, strict=True)], dim=1)]
