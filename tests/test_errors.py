"""The two error families the CLI maps to exit codes, and a missing optional package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spiking_dreamer import errors
from spiking_dreamer.cli import main
from spiking_dreamer.errors import MissingExtraError, UserError, import_extra

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
