"""``torchrun --nproc_per_node N -m regnet_explore.train CONFIG ...``: the train command for each process."""

from __future__ import annotations

import argparse
import sys

from regnet_explore.errors import RegNetExploreError
from regnet_explore.train.commands import add_train_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regnet_explore.train")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RegNetExploreError as e:
        print(f"regnet_explore.train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
