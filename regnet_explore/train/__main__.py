"""``torchrun --nproc_per_node N -m regnet_explore.train CONFIG ...``: ``regnet-explore train`` in each process."""

from __future__ import annotations

import sys

from regnet_explore.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
