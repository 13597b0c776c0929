"""Analytic complexity (FLOPs, params, activations) with pycls's counting rules.

A conv counts k*k*w_in*w_out*h*w/groups multiply-adds and w_out*h*w activations; a norm counts 2*C params and
nothing else; a bias adds C flops and C params. Every module keeps its own ``complexity`` beside its
constructor (pycls style), a static method taking the constructor's arguments, so a configuration is costed
without building the network. A detector stage (``RegNet``, ``SECOND``, ``FPN``, ``SECONDFPN``, ``AnchorHead``) is
``complexity(cx, sizes, *constructor args)``: it adds its cost to ``cx`` for input maps of the given (h, w) and
returns the sizes of its output maps; its parameters are the constructor's, declared once there and bound by
:func:`constructor_args`. A block (``Bottleneck``) starts from ``cx``'s current (h, w).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def constructor_args(cls: type, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments ``cls(*args, **kwargs)`` would receive, defaults filled in (a wrong name or a missing argument
    raises ``TypeError`` as the constructor would): a complexity twin takes the constructor's parameters without
    declaring them a second time."""
    bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    bound.apply_defaults()
    return dict(list(bound.arguments.items())[1:])  # without self


@dataclass
class Complexity:
    """Running totals plus the current spatial size (h, w)."""

    h: int
    w: int
    flops: int = 0
    params: int = 0
    acts: int = 0

    def conv(self, w_in: int, w_out: int, k: int, stride: int = 1, padding: int = 0, groups: int = 1,
             bias: bool = False, dilation: int = 1) -> Complexity:
        span = dilation * (k - 1) + 1
        self.h = (self.h + 2 * padding - span) // stride + 1
        self.w = (self.w + 2 * padding - span) // stride + 1
        self.flops += k * k * w_in * w_out * self.h * self.w // groups + (w_out if bias else 0)
        self.params += k * k * w_in * w_out // groups + (w_out if bias else 0)
        self.acts += w_out * self.h * self.w
        return self

    def conv_transpose(self, w_in: int, w_out: int, k: int, stride: int, bias: bool = False) -> Complexity:
        """ConvTranspose2d with kernel == stride (SECOND FPN deblocks): output is stride x larger."""
        self.h, self.w = self.h * stride, self.w * stride
        in_pixels = (self.h // stride) * (self.w // stride)
        self.flops += k * k * w_in * w_out * in_pixels + (w_out if bias else 0)
        self.params += k * k * w_in * w_out + (w_out if bias else 0)
        self.acts += w_out * self.h * self.w
        return self

    def norm(self, channels: int) -> Complexity:
        self.params += 2 * channels
        return self

    def linear(self, w_in: int, w_out: int, bias: bool = True) -> Complexity:
        """A fully connected layer on a pooled (1x1) input, counted as pycls counts its 1x1 conv head."""
        self.h, self.w = 1, 1
        return self.conv(w_in, w_out, 1, bias=bias)

    def summary(self) -> dict[str, int]:
        return {"flops": self.flops, "params": self.params, "acts": self.acts}
