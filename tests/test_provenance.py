"""Provenance recorded in result files: commit, versions, machine."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from spiking_dreamer.provenance import git_commit, result_header, versions


def test_git_commit_names_head_or_says_unknown(tmp_path: Path) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", git_commit())
    assert git_commit(tmp_path) == "unknown"  # not a git checkout


def test_result_header_fields() -> None:
    header = result_header("demo", threads=3)
    assert header["benchmark"] == "demo"
    assert header["machine"]["threads"] == 3
    assert header["machine"]["cores"] >= 1
    assert header["versions"]["torch"] == str(torch.__version__)
    assert isinstance(header["versions"]["torch"], str)  # weights_only loads refuse TorchVersion
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", header["date"])
    assert header["command"]
    assert set(versions()) >= {"spiking_dreamer", "torch", "gymnasium", "mujoco", "numpy"}
