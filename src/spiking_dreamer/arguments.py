"""Argparse types shared by the CLI and the benchmark scripts: each rejects a bad value while
the command line is parsed, before any work, with a message naming the problem (exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from spiking_dreamer.config import MAX_SEED, device_problem
from spiking_dreamer.config_loading import load_config
from spiking_dreamer.errors import OutputPathError, UserError
from spiking_dreamer.files import check_output_file


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (``[lo, inf)`` without ``hi``)."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"be >= {lo}" if hi is None else f"lie in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"must {bound}, got {value}")
        return value

    return integer


positive_int = int_in(1)
seed_int = int_in(0, MAX_SEED)


def number_in(lo: float, hi: float, lo_open: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number in ``(lo, hi]`` (``[lo, hi]`` unless ``lo_open``)."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        low_ok = value > lo if lo_open else value >= lo
        if not (math.isfinite(value) and low_ok and value <= hi):
            bound = f"({lo:g}, {hi:g}]" if lo_open else f"[{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"must lie in {bound}, got {text}")
        return value

    return number


def nonempty_path(text: str) -> str:
    """An argparse type: a path, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    return text


def existing_file(text: str) -> Path:
    """An argparse type: a file that exists and can be read."""
    path = Path(nonempty_path(text))
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    return path


def existing_dir(text: str) -> Path:
    """An argparse type: a directory that exists (a run directory, say)."""
    path = Path(nonempty_path(text))
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: no such directory")
    return path


def config_file(text: str) -> str:
    """An argparse type: a YAML config that loads (every key known, every value valid)."""
    try:
        load_config(nonempty_path(text))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def output_file(text: str) -> Path:
    """An argparse type: a file that can be written (created or replaced); creates nothing
    (:func:`spiking_dreamer.files.check_output_file`)."""
    try:
        return check_output_file(text, "path")
    except OutputPathError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def device_name(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text
