"""Pillar feature encoder: mmdet3d ``HardVFE`` (keys ``vfe_layers.{i}.norm`` / ``vfe_layers.{i}.linear``).

Per point: (x, y, z, t) + offset to the pillar's point mean (3) + offset to the pillar's centre (3) = 10 values.
Each layer is Linear (no bias) -> BatchNorm1d -> ReLU -> max over the pillar; a non-last layer passes on the
point-wise features concatenated with the pillar max (64 + 64 = 128).

mmdet3d runs every layer on the zero-padded (M, P, C) voxel tensor and only masks the 10 input features, so
padded slots are *not* inert: after the first BN they hold relu(BN(0)), they enter every max, and the second
layer sees them as [relu(BN(0)), pillar max]. BatchNorm statistics in training are taken over all M x P slots,
padded ones included. All padded slots of a pillar are identical, so here each pillar with padding gets one
virtual zero-input row weighted by its number of padded slots: the real points plus these rows give exactly
the reference's outputs and BN statistics while computing only on real points (the reference's padded
formulation costs M x P rows: 40,000 x 64 at test time). In eval the BN is folded into the linear layer, and
the last layer adds its per-pillar terms and applies the ReLU after the max (both commute with it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from regnet_explore.parallel import moments


class VFELayer(nn.Module):
    """Linear (no bias) + BatchNorm1d; norm is registered first, as in mmdet3d (state_dict order)."""

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.norm = nn.BatchNorm1d(out_channels, eps=eps, momentum=momentum)
        self.linear = nn.Linear(in_channels, out_channels, bias=False)

    def eval_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) of the BN with its running statistics: BN(y) = y * scale + shift."""
        bn = self.norm
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return scale, bn.bias - bn.running_mean * scale

    def normalize(self, y: torch.Tensor, y_virtual: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """BN of real rows y (N, C) and virtual rows y_virtual (M or 1, C) weighted by pad (M,) slots each."""
        bn = self.norm
        if bn.training or bn.running_mean is None:
            w = pad.to(y.dtype).unsqueeze(1)
            count = len(y) + pad.sum()
            # summed over every process when training distributed: the statistics of the whole batch
            mean, var, total = moments(y.sum(0) + (w * y_virtual).sum(0),
                                       (y * y).sum(0) + (w * y_virtual * y_virtual).sum(0), count)
            if bn.training and bn.running_mean is not None:
                with torch.no_grad():
                    bn.num_batches_tracked.add_(1)
                    unbiased = var * total / (total - 1).clamp(min=1)
                    bn.running_mean.lerp_(mean, bn.momentum)
                    bn.running_var.lerp_(unbiased, bn.momentum)
        else:
            mean, var = bn.running_mean, bn.running_var
        scale = bn.weight * torch.rsqrt(var + bn.eps)
        shift = bn.bias - mean * scale
        return y * scale + shift, y_virtual * scale + shift


class HardVFE(nn.Module):
    """(voxels (M, P, C_in), num_points (M,), coors (M, 4) = b, z, y, x) -> pillar features (M, C_out)."""

    def __init__(self, in_channels: int = 4, feat_channels: Sequence[int] = (64, 64),
                 voxel_size: Sequence[float] = (0.25, 0.25, 8), point_cloud_range: Sequence[float] = (
                     -50, -50, -5, 50, 50, 3), eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.set_range(point_cloud_range)
        widths = [in_channels + 6, *feat_channels]
        self.vfe_layers = nn.ModuleList(
            VFELayer(widths[i] * (2 if i > 0 else 1), widths[i + 1], eps, momentum) for i in range(len(feat_channels)))
        self.out_channels = widths[-1]

    def set_range(self, point_cloud_range: Sequence[float]) -> None:
        # centre of cell 0 along x, y, z
        self.offset = tuple(self.voxel_size[i] / 2 + point_cloud_range[i] for i in range(3))

    def decorate(self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor,
                 pillar: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """10 features per real point (N, 10): raw, minus pillar point mean, minus pillar centre."""
        mean = voxels[:, :, :3].sum(dim=1) / num_points.to(voxels.dtype).unsqueeze(1)
        size = torch.tensor(self.voxel_size, dtype=points.dtype, device=points.device)
        offset = torch.tensor(self.offset, dtype=points.dtype, device=points.device)
        centre = coors[:, [3, 2, 1]].to(points.dtype) * size + offset
        xyz = points[:, :3]
        return torch.cat([points, xyz - mean[pillar], xyz - centre[pillar]], dim=1)

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coors: torch.Tensor) -> torch.Tensor:
        m, p = voxels.shape[:2]
        counts = num_points.clamp(max=p)
        flat, pillar = real_slots(counts, p)
        points = voxels.reshape(m * p, voxels.shape[2]).index_select(0, flat)
        pad = p - counts
        has_pad = (pad > 0).unsqueeze(1)
        x = self.decorate(voxels, num_points, coors, pillar, points)
        # padded slots have all-zero inputs: one shared row until a layer adds its per-pillar max (broadcasting)
        x_virtual = x.new_zeros((1, x.shape[1]))
        agg = None
        for i, layer in enumerate(self.vfe_layers):
            weight, shift = layer.linear.weight, None
            if not layer.norm.training:  # eval: BN folded into the linear layer
                scale, shift = layer.eval_affine()
                weight = weight * scale.unsqueeze(1)
            c = x.shape[1]  # a non-first layer's input is [point-wise, pillar max]: that half is per pillar
            w = weight[:, :c].t()
            from_max = None if agg is None else agg @ weight[:, c:].t()
            if shift is not None and i == len(self.vfe_layers) - 1:
                # per-pillar constants and the ReLU commute with the max: apply them once per pillar, after it
                top = pillar_max(x @ w, x_virtual @ w, pillar, has_pad, float("-inf"))
                return torch.relu(top + (shift if from_max is None else from_max + shift))
            if shift is not None and from_max is None:
                y, y_virtual = torch.addmm(shift, x, w), torch.addmm(shift, x_virtual, w)
            else:
                y, y_virtual = x @ w, x_virtual @ w
                if from_max is not None:
                    y, y_virtual = y + from_max[pillar], y_virtual + from_max
                if shift is None:
                    y, y_virtual = layer.normalize(y, y_virtual, pad)
                else:
                    y, y_virtual = y + shift, y_virtual + shift
            # y is a fresh temporary: rectify it in place unless autograd needs it
            x = torch.relu(y) if y.requires_grad else y.relu_()
            x_virtual = torch.relu(y_virtual)
            # relu output is >= 0 and every pillar has a real point, so 0 is a neutral start for the max
            agg = pillar_max(x, x_virtual, pillar, has_pad, 0.0)
        return agg


def real_slots(counts: torch.Tensor, p: int, exportable: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real points are the first counts[j] of the P slots of pillar j: their flat slot indices (N,) = pillar * P +
    slot, pillar-major, and their pillars (N,). ``repeat_interleave`` is the fast way; ONNX gets a mask and
    ``nonzero`` (the same indices; repeat_interleave by a tensor does not export), chosen while exporting."""
    if exportable if exportable is not None else torch.onnx.is_in_onnx_export():
        real = torch.arange(p, device=counts.device) < counts.unsqueeze(1)  # (M, P)
        flat = real.reshape(-1).nonzero().reshape(-1)
        return flat, torch.div(flat, p, rounding_mode="floor")
    pillar = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return pillar * p + torch.arange(len(pillar), device=counts.device) - first[pillar], pillar


def pillar_max(rows: torch.Tensor, virtual: torch.Tensor, pillar: torch.Tensor, has_pad: torch.Tensor,
               neutral: float) -> torch.Tensor:
    """Per-pillar max (M, C) of real rows (N, C) and, for pillars with padding, their virtual row (M or 1, C)."""
    start = torch.where(has_pad, virtual, torch.tensor(neutral, dtype=rows.dtype, device=rows.device))
    if torch.onnx.is_in_onnx_export():
        return _RowMax.apply(start, pillar, rows)
    return start.scatter_reduce(0, pillar[:, None].expand(-1, rows.shape[1]), rows, "amax", include_self=True)


class _RowMax(torch.autograd.Function):
    """``start`` with row ``pillar[i]`` maxed with ``rows[i]``, exported as one ScatterND(reduction=max): onnxruntime
    runs it in milliseconds, where the ScatterElements of ``scatter_reduce`` takes most of a second."""

    @staticmethod
    def forward(ctx, start: torch.Tensor, pillar: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return start.scatter_reduce(0, pillar[:, None].expand(-1, rows.shape[1]), rows, "amax", include_self=True)

    @staticmethod
    def symbolic(g, start, pillar, rows):
        index = g.op("Unsqueeze", pillar, g.op("Constant", value_t=torch.tensor([1])))
        return g.op("ScatterND", start, index, rows, reduction_s="max")
