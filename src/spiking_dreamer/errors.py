"""The errors a user can meet, in two families the CLI maps to exit codes.

- :class:`UserError` (exit code 2): input that cannot be used (a config key, an env id, a
  checkpoint, a run directory, a missing optional package). Nothing was changed on disk.
- :class:`TrainingDivergedError` (exit code 3): training produced a non-finite value; the last
  good training state is kept, so the run can be resumed.

Each concrete class also derives from the builtin it refines (``ValueError``, ``ImportError``,
...), so ``except ValueError`` (and the like) catches them for library callers.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class UserError(Exception):
    """Input that cannot be used; the message says what and where (CLI exit code 2)."""


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names the key and its source."""


class EnvError(UserError, ValueError):
    """An environment id or argument that cannot be used."""


class TerminationError(UserError, ValueError):
    """No exact termination function exists for an env id or its keyword arguments."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, unreadable, of another kind or incompatible."""


class RunDirError(UserError, RuntimeError):
    """The run directory cannot be used."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite value; the last good training state is kept (exit 3)."""


def import_extra(module: str, purpose: str, extra: str) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` saying that ``purpose`` needs it and
    that ``pip install 'spiking-dreamer[extra]'`` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{purpose} needs the optional package {module!r} ({e}): "
            f"pip install 'spiking-dreamer[{extra}]'"
        ) from None
