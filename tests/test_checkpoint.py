"""Checkpoint safety: pickles refused, truncation detected, wrong kinds rejected."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from spiking_dreamer.config import Config
from spiking_dreamer.config_loading import config_from_dict
from spiking_dreamer.training.checkpoint import (
    CheckpointError,
    actor_checkpoint,
    atomic_torch_save,
    load_actor,
)

from .helpers import TINY_ACTOR, tiny_td3


def _saved(tmp_path: Path) -> Path:
    agent = tiny_td3()
    agent.actor.obs_normalizer.update(torch.randn(20, 3) * 3)
    cfg = config_from_dict({"actor": Config().replace(actor={}).to_dict()["actor"]})
    cfg = cfg.replace(
        actor={
            "hidden_sizes": list(TINY_ACTOR.hidden_sizes),
            "spike_ts": 2,
            "encoder_pop_dim": 4,
            "decoder_pop_dim": 3,
        }
    )
    path = tmp_path / "actor.pt"
    atomic_torch_save(actor_checkpoint(agent.actor, cfg, "Pendulum-v1", 7, 1.5), path)
    return path


def test_round_trip_reproduces_actions(tmp_path: Path) -> None:
    agent_path = _saved(tmp_path)
    actor, data = load_actor(agent_path)
    assert data["step"] == 7
    ref = tiny_td3()
    ref.actor.obs_normalizer.update(torch.randn(20, 3) * 3)  # not the same stats
    x = torch.randn(4, 3)
    assert actor(x).shape == (4, 2)
    reloaded, _ = load_actor(agent_path)
    assert torch.equal(actor(x), reloaded(x))


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/spiking_dreamer_pwned",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = Path("/tmp/spiking_dreamer_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "spiking-dreamer/actor", "payload": _Exploit()}, path, pickle_module=pickle
    )
    with pytest.raises(CheckpointError, match="refused"):
        load_actor(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_reported(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_actor(path)


def test_other_kinds_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_actor(tmp_path / "nope.pt")
    path = tmp_path / "x.pt"
    torch.save({"format": "spiking-dreamer/training-state"}, path)
    with pytest.raises(CheckpointError, match="not an actor checkpoint"):
        load_actor(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a spiking-dreamer checkpoint"):
        load_actor(path)


def test_weights_that_do_not_match_the_config(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = torch.load(path, weights_only=True)
    data["config"]["actor"]["hidden_sizes"] = [32]
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_actor(path)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    atomic_torch_save({"a": torch.ones(1)}, path)

    class Unsaveable:
        def __reduce__(self) -> tuple:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"a": Unsaveable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(1))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_pickle_refusal_explains_without_recommending_weights_only_false(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "spiking-dreamer/actor", "payload": _Exploit()}, path, pickle_module=pickle
    )
    with pytest.raises(CheckpointError) as info:
        load_actor(path)
    msg = str(info.value)
    assert "refused" in msg
    assert "pickled Python objects" in msg
    assert "spiking-dreamer never writes" in msg
    assert "system" in msg  # what it wanted to build
    assert "weights_only=False" not in msg.replace(" ", "")
    assert "weights_only` set to `False" not in msg
    assert "will likely succeed" not in msg
    assert "safe_globals" not in msg


def test_pickle_refusal_in_a_training_state_payload(tmp_path: Path) -> None:
    import hashlib
    import io

    from spiking_dreamer.training.checkpoint import read_state

    buf = io.BytesIO()
    torch.save({"format_version": 1, "x": _Exploit()}, buf, pickle_module=pickle)
    payload = buf.getvalue()
    path = tmp_path / "state.pt"
    wrapped = {
        "format": "spiking-dreamer/training-state",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    torch.save(wrapped, path)
    with pytest.raises(CheckpointError) as info:
        read_state(path)
    msg = str(info.value)
    assert "refused" in msg
    assert "pickled Python objects" in msg
    assert "will likely succeed" not in msg
    assert "weights_only" not in msg.replace("weights_only=True", "")
