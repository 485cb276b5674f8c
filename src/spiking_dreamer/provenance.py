"""Where a result came from: code commit, library versions, machine. Recorded in every result
file, checkpoint and training state."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from spiking_dreamer import __version__

_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: Path | None = None) -> str:
    """``HEAD`` of the checkout this package runs from (``-dirty`` with tracked changes), or
    ``unknown``. Takes no git locks (``GIT_OPTIONAL_LOCKS=0``)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    run = {"cwd": root or _ROOT, "capture_output": True, "text": True, "check": True, "env": env}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], **run
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (plain strings: ``torch.__version__`` is
    a TorchVersion, which ``torch.load(weights_only=True)`` refuses)."""
    import importlib.metadata as md

    import gymnasium
    import mujoco
    import numpy

    out = {
        "spiking_dreamer": __version__,
        "torch": str(torch.__version__),
        "gymnasium": str(gymnasium.__version__),
        "mujoco": str(mujoco.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }
    with contextlib.suppress(md.PackageNotFoundError):  # sweeps run on it
        out["ray"] = md.version("ray")
    return out


def machine_info() -> dict[str, Any]:
    """CPU model, core count, platform, host name and, once CUDA is in use, the GPU."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_initialized() else None,
    }


def result_header(benchmark: str, **machine: Any) -> dict[str, Any]:
    """The fields every result file starts with: the benchmark's name, the command that ran it,
    commit, date, machine (``machine`` adds fields, e.g. ``threads=1``) and versions."""
    return {
        "benchmark": benchmark,
        "command": shlex.join([sys.executable, *sys.argv]),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), **machine},
        "versions": versions(),
    }
