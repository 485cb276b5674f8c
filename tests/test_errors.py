"""The two error families the CLI maps to exit codes, and a missing optional package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from spiking_dreamer import errors
from spiking_dreamer.cli import build_parser, main
from spiking_dreamer.errors import (
    EXIT_BUG,
    REPORT_BUG,
    MissingExtraError,
    UserError,
    import_extra,
)

from .helpers import TINY_ARGS


@pytest.mark.parametrize(
    "cls",
    [
        errors.ConfigError,
        errors.EnvError,
        errors.TerminationError,
        errors.CheckpointError,
        errors.RunDirError,
        errors.MissingExtraError,
        errors.OutputPathError,
    ],
)
def test_every_input_error_is_a_user_error(cls: type[Exception]) -> None:
    assert issubclass(cls, UserError)
    assert not issubclass(errors.TrainingDivergedError, UserError)


def test_import_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'spiking-dreamer\[video\]'"):
        import_extra("no_such_module_here", "video", "video")
    assert import_extra("json", "x", "y") is sys.modules["json"]


@pytest.mark.mujoco
def test_wandb_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    run = tmp_path / "run"
    argv = ["train", "--run-dir", str(run), "--wandb", "--no-dreaming", *TINY_ARGS]
    assert main([*argv, "--total-steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "--wandb" in err
    assert "pip install 'spiking-dreamer[wandb]'" in err
    assert "Traceback" not in err


def _options(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.Action]]:
    """Every option and positional of ``parser`` and its subcommands, with its command path."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _options(sub, f"{path} {name}".strip())
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            out.append((path, action))
    return out


def test_every_cli_option_has_help_text() -> None:
    options = _options(build_parser())
    assert len(options) > 40
    missing = [f"{cmd} {'/'.join(a.option_strings) or a.dest}" for cmd, a in options if not a.help]
    assert missing == [], f"options without help: {missing}"


def test_an_unexpected_exception_is_reported_as_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import spiking_dreamer.cli as cli

    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_report", broken)
    assert main(["report", "x"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "ZeroDivisionError: a bug" in err
    assert err.rstrip().endswith(f"error: {REPORT_BUG}")
    assert "please report it" in REPORT_BUG


def test_an_os_error_during_the_work_names_it_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    import spiking_dreamer.cli as cli

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/state.pt")

    monkeypatch.setattr(cli, "cmd_report", full)
    assert main(["report", "x"]) == cli.EXIT_OS_ERROR
    err = capsys.readouterr().err
    assert "No space left on device" in err
    assert "Traceback" not in err
