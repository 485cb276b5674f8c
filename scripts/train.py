"""Seed-compatible entry point: ``python scripts/train.py --config ... [--seed N] ...``."""

import sys

from spiking_dreamer.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
