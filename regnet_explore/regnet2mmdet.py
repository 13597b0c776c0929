"""``python -m regnet_explore.regnet2mmdet PRETRAIN STORE``: the call shape of mmdet's ``regnet2mmdet.py``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from regnet_explore.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
