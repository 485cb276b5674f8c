"""Atomic file writes: readers see either the old file or the complete new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _usual_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(
    path: str | Path, write: Callable[[Path], None], keep_previous: bool = False
) -> None:
    """Create or replace ``path`` atomically with what ``write`` writes.

    Calls ``write(tmp)`` with the path of a new empty temporary file in ``path``'s directory
    (created if missing; same file system, so the rename is atomic), fsyncs the file, gives it
    the usual mode (``0o666`` less the umask; ``mkstemp`` creates ``0o600``) and renames it
    over ``path``, then fsyncs the directory where the platform allows it. With
    ``keep_previous`` an existing ``path`` is first renamed to ``<name>.prev``. On any error
    (including in ``write``) the temporary file is removed and ``path`` is left as it was.

    Examples: ``atomic_write(p, lambda tmp: tmp.write_text(text))``;
    ``atomic_write(p, lambda tmp: torch.save(obj, tmp), keep_previous=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _usual_mode())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
