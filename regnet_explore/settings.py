"""Settings checked once, where they are defined.

A numeric setting has a :class:`Domain`. The settings dataclass that declares it says so in the field
(``field(default=..., metadata=within(DOMAIN))``) and checks every such field in ``__post_init__``
(:func:`check_fields`); the command line parses the option with the same domain (``type=arg(Config, "name")``).
Either way a bad value is one line naming the setting and what it must be, before any model is built or data read.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from regnet_explore.errors import RegNetExploreError


@dataclass(frozen=True)
class Domain:
    """Numbers of ``kind`` (int or float, always finite) in [``low``, ``high``] (``low_open``: ``low`` itself
    excluded); ``optional``: None allowed too (a default decided elsewhere)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    optional: bool = False

    def _text(self, bound: float) -> str:
        return str(int(bound)) if self.kind is int else f"{bound:g}"

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None and not self.low_open:
            return f"{what} in [{self._text(self.low)}, {self._text(self.high)}]"
        bounds = [f"{'>' if self.low_open else '>='} {self._text(self.low)}"] if self.low is not None else []
        bounds += [f"<= {self._text(self.high)}"] if self.high is not None else []
        return " ".join([what, " and ".join(bounds)]).strip()

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def check(self, name: str, value: Any) -> None:
        if not self.contains(value):
            raise RegNetExploreError(f"{name} must be {self.describe()}, got {value!r}")

    def parse(self, text: str) -> int | float:
        """The command line's value: converted, then checked (argparse names the option in its one-line error)."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}") from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}")
        return value

    def bad_values(self) -> list[str]:
        """Texts outside the domain, for the tests: just below and above the bounds, NaN, the infinities and a number
        too large for a float, and a fraction for a whole number."""
        out = ["nan", "inf", "-inf", "1e400"]
        if self.low is not None:
            out.append(self._text(self.low) if self.low_open else self._text(self.low - 1))
        if self.high is not None:
            out.append(self._text(self.high + 1))
        if self.kind is int:
            out.append("1.5")
        return out


COUNT = Domain(int, 1)  # at least one: epochs, frames, samples, batch sizes
COUNT_0 = Domain(int, 0)  # zero allowed: warm-up iterations, workers, intervals meaning "never"
SEED = Domain(int, 0, 2**32 - 1)  # numpy's and torch's seeds
POSITIVE = Domain(float, 0.0, low_open=True)
NON_NEGATIVE = Domain(float, 0.0)
PROBABILITY = Domain(float, 0.0, 1.0)


def within(domain: Domain, optional: bool = False) -> dict:
    """A field's metadata giving its domain (``optional``: None allowed)."""
    return {"domain": dataclasses.replace(domain, optional=optional)}


def check_fields(settings: object) -> None:
    """Check every field of a settings dataclass that has a domain (see the module docstring)."""
    for f in dataclasses.fields(settings):
        if "domain" in f.metadata:
            f.metadata["domain"].check(f.name, getattr(settings, f.name))


def arg(settings: type, name: str) -> Callable[[str], int | float]:
    """argparse's ``type`` for the option of the field ``name`` of ``settings``: its domain's parser."""
    domain = next(f.metadata["domain"] for f in dataclasses.fields(settings) if f.name == name)
    return domain.parse


def check_device(name: str, what: str = "device") -> torch.device:
    """``name`` as a torch device that this machine has (``what`` names the setting in the error)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise RegNetExploreError(f"{what} {name!r}: {str(e).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RegNetExploreError(f"{what} {name}: CUDA is not available on this machine or in this torch build "
                                 f"(torch {torch.__version__}); use cpu, or install a CUDA build of torch")
    return device


__all__ = ["COUNT", "COUNT_0", "NON_NEGATIVE", "POSITIVE", "PROBABILITY", "SEED", "Domain", "arg",
           "check_device", "check_fields", "within"]
