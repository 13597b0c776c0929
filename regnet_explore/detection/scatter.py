"""PointPillarsScatter: pillar features (M, C) + coors (M, 4) = (b, z, y, x) -> BEV image (B, C, ny, nx)."""

from __future__ import annotations

import torch
from torch import nn


class PointPillarsScatter(nn.Module):
    """Writes each pillar's feature vector at canvas index y * nx + x of its sample (no parameters)."""

    def __init__(self, in_channels: int = 64, output_shape: tuple[int, int] = (400, 400)):
        super().__init__()
        self.in_channels = in_channels
        self.ny, self.nx = output_shape

    def forward(self, features: torch.Tensor, coors: torch.Tensor, batch_size: int) -> torch.Tensor:
        """One index_put over the whole batch. The result is channels_last in memory (a permuted view of a
        (B, ny, nx, C) canvas); call ``.contiguous()`` for NCHW."""
        canvas = features.new_zeros((batch_size, self.ny * self.nx, self.in_channels))
        canvas[coors[:, 0], coors[:, 2] * self.nx + coors[:, 3]] = features
        return canvas.view(batch_size, self.ny, self.nx, self.in_channels).permute(0, 3, 1, 2)
