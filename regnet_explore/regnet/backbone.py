"""RegNet backbone with mmdet's ResNet-style state_dict layout.

Keys (regnetx_400mf, 426 tensors with the stem)::

    conv1.weight, bn1.*                                   stem (absent with stem=False: mmdet3d NoStemRegNet)
    layer{s}.{i}.conv1 / bn1 / conv2 / bn2 / conv3 / bn3   s = 1..4, i = 0-based block
    layer{s}.0.downsample.0 / downsample.1                first block when stride != 1 or width changes
    layer{s}.{i}.se.conv1 / se.conv2 (weight, bias)       RegNetY only: squeeze-excitation after conv2/bn2
    fc.weight, fc.bias                                    only with num_classes > 0 (pycls's ``head.fc``)

Input (B, C_in, H, W); output: a tuple with one (B, w_s, H / stride_s, W / stride_s) map per stage in
``out_indices``. ``classify(x)`` runs the pycls head (global average pool + fc) for the ImageNet logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.complexity import Complexity, constructor_args
from regnet_explore.regnet.design import RegNetParams, RegNetStages, Rounding, generate_stages
from regnet_explore.regnet.zoo import zoo_params

NormKind = Literal["BN", "SyncBN"]
Arch = str | RegNetParams | RegNetStages | dict


def resolve_stages(arch: Arch, rounding: Rounding = "bankers") -> RegNetStages:
    """Zoo name, :class:`RegNetParams`, mmdet ``arch`` dict or explicit :class:`RegNetStages` -> stages."""
    if isinstance(arch, RegNetStages):
        return arch
    if isinstance(arch, str):
        arch = zoo_params(arch)
    elif isinstance(arch, dict):
        unknown = set(arch) - {"w0", "wa", "wm", "group_w", "depth", "bot_mul", "se_ratio", "q"}
        if unknown:
            raise RegNetExploreError(f"unknown keys in arch dict: {sorted(unknown)}")
        arch = RegNetParams(**arch)
    if not isinstance(arch, RegNetParams):
        raise RegNetExploreError(f"arch must be a zoo name, RegNetParams, dict or RegNetStages, got {type(arch)}")
    return generate_stages(arch, rounding)


def out_channels(arch: Arch, out_indices: Sequence[int] = (0, 1, 2, 3)) -> list[int]:
    """Widths of the stages in ``out_indices`` (an FPN's ``in_channels``), without building the model."""
    widths = resolve_stages(arch).widths
    bad = [i for i in out_indices if not 0 <= i < len(widths)]
    if bad:
        raise RegNetExploreError(f"out_indices {bad} out of range for a {len(widths)}-stage network")
    return [widths[i] for i in out_indices]


def make_norm(kind: NormKind, channels: int, eps: float, momentum: float) -> nn.Module:
    if kind == "BN":
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if kind == "SyncBN":  # same state_dict as BN; plain BN when not distributed
        return nn.SyncBatchNorm(channels, eps=eps, momentum=momentum)
    raise RegNetExploreError(f"unknown norm {kind!r}: use 'BN' or 'SyncBN'")


class SqueezeExcite(nn.Module):
    """RegNetY squeeze-excitation: avg pool -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, squeezed, 1, bias=True)
        self.conv2 = nn.Conv2d(squeezed, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv2(torch.relu(self.conv1(s))))

    @staticmethod
    def complexity(cx: Complexity, channels: int, squeezed: int) -> Complexity:
        h, w = cx.h, cx.w
        cx.h, cx.w = 1, 1
        cx.conv(channels, squeezed, 1, bias=True).conv(squeezed, channels, 1, bias=True)
        cx.h, cx.w = h, w
        return cx


class Bottleneck(nn.Module):
    """Residual bottleneck X block: 1x1 -> 3x3 grouped (stride, dilation) [-> SE] -> 1x1, plus shortcut."""

    def __init__(self, w_in: int, w_out: int, stride: int, dilation: int, group_w: int, bot_mul: float,
                 se_ratio: float | None, norm: NormKind, eps: float, momentum: float):
        super().__init__()
        w_b = int(round(w_out * bot_mul))
        self.conv1 = nn.Conv2d(w_in, w_b, 1, bias=False)
        self.bn1 = make_norm(norm, w_b, eps, momentum)
        self.conv2 = nn.Conv2d(w_b, w_b, 3, stride=stride, padding=dilation, dilation=dilation,
                               groups=w_b // group_w, bias=False)
        self.bn2 = make_norm(norm, w_b, eps, momentum)
        self.se = SqueezeExcite(w_b, int(round(w_in * se_ratio))) if se_ratio else None
        self.conv3 = nn.Conv2d(w_b, w_out, 1, bias=False)
        self.bn3 = make_norm(norm, w_out, eps, momentum)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or w_in != w_out:
            self.downsample = nn.Sequential(nn.Conv2d(w_in, w_out, 1, stride=stride, bias=False),
                                            make_norm(norm, w_out, eps, momentum))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)

    @staticmethod
    def complexity(cx: Complexity, w_in: int, w_out: int, stride: int, dilation: int, group_w: int,
                   bot_mul: float, se_ratio: float | None) -> Complexity:
        w_b = int(round(w_out * bot_mul))
        if stride != 1 or w_in != w_out:
            h, w = cx.h, cx.w
            cx.conv(w_in, w_out, 1, stride).norm(w_out)
            cx.h, cx.w = h, w  # parallel branch
        cx.conv(w_in, w_b, 1).norm(w_b)
        cx.conv(w_b, w_b, 3, stride, dilation, w_b // group_w, dilation=dilation).norm(w_b)
        if se_ratio:
            SqueezeExcite.complexity(cx, w_b, int(round(w_in * se_ratio)))
        return cx.conv(w_b, w_out, 1).norm(w_out)


def _layout(arch: Arch, rounding: Rounding, strides: Sequence[int] | None, dilations: Sequence[int] | None,
            out_indices: Sequence[int] | None) -> tuple[RegNetStages, tuple[int, ...], ...]:
    """The stages of ``arch`` with their strides (default 2), dilations (default 1) and output indices (default
    every stage), checked against the number of stages."""
    stages = resolve_stages(arch, rounding)
    n = stages.num_stages
    strides = tuple(strides) if strides is not None else (2,) * n
    dilations = tuple(dilations) if dilations is not None else (1,) * n
    wrong = [f"{name} has {len(v)}" for name, v in (("strides", strides), ("dilations", dilations)) if len(v) != n]
    if wrong:
        raise RegNetExploreError(f"this arch has {n} stages (widths {list(stages.widths)}) but "
                                 f"{' and '.join(wrong)} entries; they must match (mmdet asserts the same)")
    out_indices = tuple(out_indices) if out_indices is not None else tuple(range(n))
    out_channels(stages, out_indices)  # validates the indices
    return stages, strides, dilations, out_indices


class RegNet(nn.Module):
    """RegNetX/Y backbone (mmdet ``RegNet``; ``stem=False`` is mmdet3d's ``NoStemRegNet``).

    Args mirror mmdet: ``arch`` (zoo name, RegNetParams, mmdet arch dict or RegNetStages), ``in_channels``,
    ``stem_channels`` (with ``stem=False`` the number of input channels of layer1), ``strides``, ``dilations``
    (default: 2 and 1 for every stage), ``out_indices`` (default: every stage), ``frozen_stages`` (-1: none;
    0: stem; k: stem and layer1..k), ``norm`` ('BN' or 'SyncBN') with ``norm_eps``/``norm_momentum``,
    ``norm_eval`` (BN layers stay in eval mode while training), ``zero_init_residual`` (bn3 gamma = 0).
    ``num_classes`` > 0 adds pycls's classification head as ``fc``.
    """

    def __init__(self, arch: Arch = "regnetx_400mf", in_channels: int = 3, stem_channels: int = 32,
                 stem: bool = True, strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None, frozen_stages: int = -1, norm: NormKind = "BN",
                 norm_eps: float = 1e-5, norm_momentum: float = 0.1, norm_eval: bool = True,
                 zero_init_residual: bool = True, num_classes: int = 0, rounding: Rounding = "bankers"):
        super().__init__()
        self.stages, self.strides, self.dilations, self.out_indices = _layout(arch, rounding, strides, dilations,
                                                                              out_indices)
        n = self.stages.num_stages
        if not -1 <= frozen_stages <= n:
            raise RegNetExploreError(f"frozen_stages must be in -1..{n}, got {frozen_stages}")
        self.frozen_stages, self.norm_eval, self.has_stem = frozen_stages, norm_eval, stem
        self.in_channels, self.stem_channels = in_channels, stem_channels
        if stem:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False)
            self.bn1 = make_norm(norm, stem_channels, norm_eps, norm_momentum)
            self.relu = nn.ReLU(inplace=True)
        w_in = stem_channels
        for s in range(n):
            blocks = [Bottleneck(w_in if i == 0 else self.stages.widths[s], self.stages.widths[s],
                                 self.strides[s] if i == 0 else 1, self.dilations[s],
                                 self.stages.group_widths[s], self.stages.bot_muls[s], self.stages.se_ratio,
                                 norm, norm_eps, norm_momentum)
                      for i in range(self.stages.depths[s])]
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
            w_in = self.stages.widths[s]
        self.fc = nn.Linear(w_in, num_classes) if num_classes > 0 else None
        self.init_weights(zero_init_residual)
        self._freeze_stages()

    @staticmethod
    def complexity(cx: Complexity, sizes: Sequence[tuple[int, int]], *args, **kwargs) -> list[tuple[int, int]]:
        """Adds the network's FLOPs/params/acts (pycls rules) on its one input map of ``sizes`` for the constructor's
        arguments; returns the sizes of the ``out_indices`` maps (freezing, norm and init change nothing)."""
        a = constructor_args(RegNet, args, kwargs)
        stages, strides, dilations, out_indices = _layout(a["arch"], a["rounding"], a["strides"], a["dilations"],
                                                          a["out_indices"])
        ((cx.h, cx.w),) = sizes  # a backbone has one input map
        if a["stem"]:
            cx.conv(a["in_channels"], a["stem_channels"], 3, 2, 1).norm(a["stem_channels"])
        w_in, out = a["stem_channels"], []
        for s in range(stages.num_stages):
            for i in range(stages.depths[s]):
                Bottleneck.complexity(cx, w_in, stages.widths[s], strides[s] if i == 0 else 1, dilations[s],
                                      stages.group_widths[s], stages.bot_muls[s], stages.se_ratio)
                w_in = stages.widths[s]
            if s in out_indices:
                out.append((cx.h, cx.w))
        if a["num_classes"]:
            cx.linear(w_in, a["num_classes"])
        return out

    @property
    def out_channels(self) -> list[int]:
        return out_channels(self.stages, self.out_indices)

    def init_weights(self, zero_init_residual: bool = True) -> None:
        """mmdet's init without pretrained weights: Kaiming (fan_out) convs, BN 1/0, bn3 gamma 0 if asked."""
        if next(self.parameters()).is_meta:  # shapes only (see convert.expected_shapes): nothing to fill
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def _frozen_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = []
        if self.frozen_stages >= 0 and self.has_stem:
            mods += [self.conv1, self.bn1]
        mods += [getattr(self, f"layer{s}") for s in range(1, self.frozen_stages + 1)]
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> RegNet:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.has_stem:
            x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for s in range(self.stages.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
            if s in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits through pycls's head (needs ``num_classes`` > 0)."""
        if self.fc is None:
            raise RegNetExploreError("this backbone has no classifier: build it with num_classes > 0")
        if self.has_stem:
            x = self.relu(self.bn1(self.conv1(x)))
        for s in range(self.stages.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(x.mean((2, 3)))


def regnet_complexity(arch: Arch, height: int = 224, width: int | None = None, in_channels: int = 3,
                      stem_channels: int = 32, stem: bool = True, strides: Sequence[int] | None = None,
                      dilations: Sequence[int] | None = None, num_classes: int = 1000) -> dict[str, int]:
    """Analytic complexity of a RegNet; the defaults are pycls's ImageNet network (224 px, 1000 classes)."""
    cx = Complexity(height, width if width is not None else height)
    RegNet.complexity(cx, [(cx.h, cx.w)], arch, in_channels, stem_channels, stem, strides, dilations,
                      num_classes=num_classes)
    return cx.summary()
