"""Atomic file writes: readers see either the old file or the complete new one, never a torn one.

And the checks of output paths made before any work (:func:`check_output_file`,
:func:`check_output_dir`): a path that cannot be written is refused at once, not after the work;
the reader of the JSON-lines logs a live run appends to (:func:`read_jsonl`); and whether a run
directory's ``summary.json`` says it trained every step (:func:`trained_all_steps`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spiking_dreamer.errors import OutputPathError


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


def atomic_write_json(path: str | Path, data: Any, **dumps: Any) -> None:
    """Write ``data`` as indented JSON (one space, a final newline) to ``path`` atomically
    (:func:`atomic_write`); ``dumps`` go to ``json.dumps`` (e.g. ``default=list``)."""
    text = json.dumps(data, indent=1, **dumps) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


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


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _probe_writable(directory: Path, what: str) -> None:
    """Create and remove a probe file in ``directory``; an :class:`OutputPathError` if that
    fails (a read-only file system, ``/proc``, missing permissions)."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".spiking-dreamer-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise OutputPathError(
            f"{what}: cannot create a file in {directory}: {e.strerror}"
        ) from None


def check_output_dir(path: str | Path, what: str) -> Path:
    """Check, before any work, that the directory ``path`` can be created or written into;
    ``what`` names the input in the message (e.g. ``"--run-dir runs/x"``). Creates nothing
    (a probe file is created and removed in the nearest existing directory).

    Raises:
        OutputPathError: ``path`` is empty, is a file, lies below a file, or cannot be written.
    """
    if str(path).strip() == "":
        raise OutputPathError(f"{what}: the path is empty")
    path = Path(path)
    existing = nearest_existing(path)
    if existing.is_file():
        raise OutputPathError(f"{what}: {existing} is a file, not a directory")
    if not existing.is_dir():
        raise OutputPathError(f"{what}: {existing} exists and is not a directory")
    _probe_writable(existing, what)
    return path


def check_output_file(path: str | Path, what: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Check, before any work, that the file ``path`` can be written (created, or replaced)
    and is none of the command's ``inputs``; ``what`` names the input in the message (e.g.
    ``"--out"``). Creates nothing.

    Raises:
        OutputPathError: ``path`` is empty, an existing directory or other non-regular file, one
            of ``inputs``, or its directory cannot be created or written.
    """
    if str(path).strip() == "":
        raise OutputPathError(f"{what}: the path is empty")
    path = Path(path)
    for source in inputs:
        if Path(source).resolve() == path.resolve():
            raise OutputPathError(f"{what} {path}: is also an input; write elsewhere")
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{what} {path}: exists and is not a regular file")
    check_output_dir(path.parent, f"{what} {path}")
    return path


def read_jsonl(path: str | Path) -> tuple[list[tuple[int, Any]], list[str]]:
    """The records of a JSON-lines file that a live run may be appending to.

    Returns ``(line number, record)`` for each line that parses (numbered from 1), and a note
    for each other non-blank line (``"line 4 (not UTF-8 text: ...)"``,
    ``"line 2 (JSONDecodeError: ...)"``). A last line without its newline that does not parse
    is being written: it is skipped without a note.

    Raises:
        OSError: the file cannot be read.
    """
    lines = Path(path).read_bytes().split(b"\n")
    found: list[tuple[int, Any]] = []
    notes: list[str] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            found.append((number, json.loads(raw.decode("utf-8"))))
        except ValueError as e:  # UnicodeDecodeError is one
            if number == len(lines):  # no newline after it yet: being written
                continue
            why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else type(e).__name__
            notes.append(f"line {number} ({why}: {str(e)[:60]})")
    return found, notes


def trained_all_steps(run_dir: str | Path, total_steps: int | None) -> bool:
    """Whether ``run_dir/summary.json`` says the run trained ``total_steps`` steps or more.

    A run stopped early writes a summary too, so its ``steps`` is what counts; ``None`` asks
    only that a summary exists. A missing, unreadable or malformed summary is ``False``.
    """
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict):
        return False
    if total_steps is None:
        return True
    steps = summary.get("steps")
    return isinstance(steps, int) and not isinstance(steps, bool) and steps >= total_steps
