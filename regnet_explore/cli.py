"""``regnet-explore``: the command line.

Each part of the package has its subcommands in a module of ``regnet_explore.commands`` (``register(subparsers)``);
this file only assembles them and turns a :class:`RegNetExploreError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``regnet-explore CMD: error: argument --x: ...``) and exit code 2,
    without the usage block; ``--help`` still shows it. Subcommand parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="regnet-explore", description=__doc__.splitlines()[0])
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


DISK_HINTS = {errno.EROFS: "the file system is read-only: write somewhere else (--out, --work-dir, or "
                           "REGNET_EXPLORE_DATA for the synthetic sets)",
              errno.ENOSPC: "the disk is full: free space or write somewhere else",
              errno.EACCES: "no permission: write somewhere you own",
              errno.EDQUOT: "the disk quota is used up: free space or write somewhere else"}


def disk_error(e: OSError) -> str:
    """One line for a failed read or write: the file, what happened and what to do."""
    where = f"{e.filename}: " if e.filename else ""
    hint = DISK_HINTS.get(e.errno)
    return f"{where}{e.strerror or e}" + (f"; {hint}" if hint else "")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's one-line error (exit 2) or --help (0): the same code in-process
        return int(e.code or 0)
    tune_allocator()
    try:
        return int(args.func(args) or 0)
    except RegNetExploreError as e:
        print(f"regnet-explore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk, not the input: read-only, full, no permission
        print(f"regnet-explore {args.command}: error: {disk_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"regnet-explore {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # a torchrun job: each rank ends its process group before exiting
            from regnet_explore.train.distributed import leave_process_group

            leave_process_group()


if __name__ == "__main__":
    sys.exit(main())
