"""The errors a user can meet, in two families the CLI maps to exit codes.

- :class:`UserError` (exit code 2): input that cannot be used (a config key, an env id, a
  checkpoint, a run directory, a missing optional package). Nothing was changed on disk.
- :class:`TrainingDivergedError` (exit code 3): training produced a non-finite value; the last
  good training state is kept, so the run can be resumed.

Anything else that escapes is a bug: the CLI prints its traceback and :data:`REPORT_BUG`
(exit code :data:`EXIT_BUG`).

Each concrete class also derives from the builtin it refines (``ValueError``, ``ImportError``,
...), so ``except ValueError`` (and the like) catches them for library callers.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXIT_BUG = 70
"""CLI exit code of an unexpected exception: a bug, not a problem with the input."""
REPORT_BUG = (
    "this is a bug in spiking-dreamer, not a problem with your input: please report it on the "
    "project's issue tracker with the command, the traceback above and the output of "
    "'spiking-dreamer --version'"
)


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


class OutputPathError(UserError, ValueError):
    """An output file or directory that cannot be written (checked before any work)."""


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
