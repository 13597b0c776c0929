"""Argument types the subcommands share."""

from __future__ import annotations

import argparse


def int_list(text: str) -> tuple[int, ...]:
    """``64,64`` -> (64, 64)."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 64,64") from None
