"""Stopping a run cleanly on SIGINT / SIGTERM, whatever happened to its output streams.

With ``spiking-dreamer train ... 2>&1 | tee log``, Ctrl-C also ends ``tee``: every later write
to stdout or stderr fails with a broken pipe. Saving the training state must not depend on
them, so everything the loop prints goes through :func:`say` and the progress bar writes to a
:class:`QuietStream`; a closed stream just drops the text.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO


def say(message: str, stream: IO[str] | None = None) -> None:
    """Print ``message`` to ``stream`` (stderr by default); a closed or broken stream is no
    error (the message is dropped)."""
    QuietStream(stream or sys.stderr).write(message + "\n")


class QuietStream:
    """A text stream wrapper whose writes and flushes never raise for a closed or broken
    stream (for the progress bar)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            n = self._stream.write(text)
            self._stream.flush()
            return n
        except (OSError, ValueError):  # broken pipe; closed file
            return len(text)

    def flush(self) -> None:
        with suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False


class StopRequest:
    """SIGINT/SIGTERM while :meth:`installed`: the first sets :attr:`requested` (the loop
    finishes the episode, saves and stops); a second raises ``KeyboardInterrupt`` (stop at
    once; the last saved state stays valid)."""

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        say(
            f"\n{signal.Signals(signum).name}: saving the training state at the end of this "
            "episode (send again to stop at once)"
        )

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
