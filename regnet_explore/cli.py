"""``regnet-explore``: the command line.

Each part of the package has its subcommands in a module of ``regnet_explore.commands`` (``register(subparsers)``);
this file only assembles them and turns a :class:`RegNetExploreError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from regnet_explore.errors import RegNetExploreError
from regnet_explore.runtime import tune_allocator

# Modules that define ``register(subparsers)``; each subcommand sets ``func(args) -> int``.
COMMAND_MODULES = (
    "regnet_explore.commands.regnet",
    "regnet_explore.commands.detection",
    "regnet_explore.commands.deploy",
    "regnet_explore.commands.data",
    "regnet_explore.commands.evaluation",
    "regnet_explore.commands.train",
    "regnet_explore.commands.analysis",
    "regnet_explore.commands.latency",
    "regnet_explore.demo",
    "regnet_explore.lab",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regnet-explore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the module: surface it
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except RegNetExploreError as e:
        print(f"regnet-explore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"regnet-explore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
