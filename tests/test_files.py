"""``atomic_write``: complete files with the usual mode, the previous file kept on request,
nothing left behind when writing fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spiking_dreamer.files import atomic_write


def test_atomic_write_creates_replaces_and_keeps_previous(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "data.json"
    atomic_write(path, lambda tmp: tmp.write_text("one"))
    assert path.read_text() == "one"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    atomic_write(path, lambda tmp: tmp.write_text("two"), keep_previous=True)
    assert path.read_text() == "two"
    assert path.with_name("data.json.prev").read_text() == "one"
    atomic_write(path, lambda tmp: tmp.write_bytes(b"three"))
    assert path.read_text() == "three"
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.json", "data.json.prev"]


def test_atomic_write_failure_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail, keep_previous=True)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
