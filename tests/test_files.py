"""``atomic_write``: complete files with the usual mode, the previous file kept on request,
nothing left behind when writing fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spiking_dreamer.files import atomic_write, atomic_write_json, read_jsonl, trained_all_steps


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


def test_output_paths_are_checked_without_writing_anything(tmp_path: Path) -> None:
    from spiking_dreamer.errors import OutputPathError, UserError
    from spiking_dreamer.files import check_output_dir, check_output_file

    assert issubclass(OutputPathError, UserError)
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "adir").mkdir()
    assert check_output_file(tmp_path / "new" / "deeper" / "x.gif", "--video").name == "x.gif"
    assert check_output_file(afile, "--out") == afile  # an existing file may be replaced
    assert check_output_dir(tmp_path / "new" / "run", "--run-dir").name == "run"
    for path, message in [
        (afile / "x.gif", "is a file, not a directory"),
        (afile / "a" / "b" / "x.gif", "is a file, not a directory"),
        (tmp_path / "adir", "is a directory; give a file name"),
        (Path("/proc/x.gif"), "cannot create a file in /proc"),
        (Path("/dev/null"), "exists and is not a regular file"),
        ("", "the path is empty"),
    ]:
        with pytest.raises(OutputPathError, match=message):
            check_output_file(path, "--out")
    with pytest.raises(OutputPathError, match="is a file, not a directory"):
        check_output_dir(afile, "--exp-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # nothing created


def test_atomic_write_json_writes_indented_json_or_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    atomic_write_json(path, {"a": [1, 2]})
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ]\n}\n'
    atomic_write_json(path, {"b": {3}}, default=list)  # dumps arguments pass through
    assert json.loads(path.read_text()) == {"b": [3]}
    with pytest.raises(TypeError):  # a set without default=list: nothing replaced
        atomic_write_json(path, {"c": {4}})
    assert json.loads(path.read_text()) == {"b": [3]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_read_jsonl_numbers_records_and_notes_bad_lines_but_not_a_torn_last_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n\nnot json\n\xff\xfe\n[2]\n{"b": ')
    found, notes = read_jsonl(path)
    assert found == [(1, {"a": 1}), (5, [2])]
    assert [n.split(" (")[0] for n in notes] == ["line 3", "line 4"]
    assert notes[0].startswith("line 3 (JSONDecodeError: ")
    assert notes[1].startswith("line 4 (not UTF-8 text: ")
    path.write_bytes(b'{"a": 1}\n{"b": 2}')  # a complete record without its newline is kept
    assert read_jsonl(path) == ([(1, {"a": 1}), (2, {"b": 2})], [])
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("summary", "total", "expected"),
    [
        (b'{"steps": 100}', 100, True),
        (b'{"steps": 150}', 100, True),
        (b'{"steps": 99}', 100, False),  # stopped early: a summary, not finished
        (b'{"steps": 99}', None, True),  # None asks only for a summary
        (b'{"steps": "100"}', 100, False),
        (b'{"steps": true}', 1, False),
        (b'{"final_return": 1.0}', 100, False),
        (b"[100]", 100, False),
        (b'{"steps": 10', 1, False),  # torn
        (b"\xff\xfe", 1, False),
        (None, None, False),  # no summary
    ],
)
def test_trained_all_steps_reads_the_summary_steps_against_the_total(
    tmp_path: Path, summary: bytes | None, total: int | None, expected: bool
) -> None:
    if summary is not None:
        (tmp_path / "summary.json").write_bytes(summary)
    assert trained_all_steps(tmp_path, total) is expected
