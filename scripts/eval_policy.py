"""Seed-compatible entry point: ``python scripts/eval_policy.py --checkpoint ... --env ...``."""

import sys

from spiking_dreamer.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
