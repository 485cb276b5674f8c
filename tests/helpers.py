"""Small builders and settings shared by the tests (the one place tests import from)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml

from spiking_dreamer.agent import SAC, TD3, PopSpikingActor, TwinQCritic, build_actor
from spiking_dreamer.buffers import Batch
from spiking_dreamer.config import KIND_DEFAULTS, ActorConfig, Config, SACConfig, TD3Config
from spiking_dreamer.files import read_jsonl
from spiking_dreamer.training.checkpoint import load_state_file

TINY_ACTOR = ActorConfig(hidden_sizes=(16,), spike_ts=2, encoder_pop_dim=4, decoder_pop_dim=3)


def tiny_td3(
    obs_dim: int = 3,
    act_dim: int = 2,
    seed: int = 0,
    td3: TD3Config | None = None,
    action_high: float = 1.0,
) -> TD3:
    torch.manual_seed(seed)
    high = torch.full((act_dim,), action_high)
    actor = PopSpikingActor(obs_dim, -high, high, TINY_ACTOR)
    critic = TwinQCritic(obs_dim, act_dim, (16, 16))
    return TD3(actor, critic, td3 or TD3Config(), torch.Generator().manual_seed(seed))


def tiny_sac(
    obs_dim: int = 3,
    act_dim: int = 2,
    seed: int = 0,
    sac: SACConfig | None = None,
    action_high: float = 1.0,
    kind: str = "popsan",
    **actor: object,
) -> SAC:
    """A SAC agent of tiny networks (PopSAN-SAC, or its MLP reference with ``kind="mlp"``)."""
    torch.manual_seed(seed)
    high = torch.full((act_dim,), action_high)
    sac = sac or SACConfig(log_std_hidden_sizes=(16,))
    cfg = ActorConfig(**{**TINY_ACTOR.__dict__, "kind": kind, **actor})
    policy = build_actor(obs_dim, -high, high, cfg, sac)
    critic = TwinQCritic(obs_dim, act_dim, (16, 16))
    return SAC(policy, critic, sac, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]


def as_sac(settings: list[str]) -> list[str]:
    """``--set`` overrides of a TD3 run as those of the same run with SAC: ``td3.*`` keys under
    ``sac.*`` (those SAC has), ``agent.kind=sac``, and a log-std network of the actor's size."""
    shared = set(SACConfig.__dataclass_fields__)
    out = []
    for s in settings:
        if s.startswith("td3."):
            key = s.split("=", 1)[0][4:]
            if key not in shared:
                continue
            s = "sac." + s[4:]
        out.append(s)
    return [*out, "agent.kind=sac", "sac.log_std_hidden_sizes=[16]"]


TINY_SETTINGS = [
    "actor.hidden_sizes=[16]",
    "actor.spike_ts=2",
    "critic.hidden_sizes=[16, 16]",
    "td3.batch_size=16",
    "train.start_steps=50",
    "train.update_after=25",
    "train.eval_every=50",
    "train.eval_episodes=1",
    "log.log_every=25",
    "log.progress=false",
    "log.tensorboard=false",
    "env.kwargs={max_episode_steps: 25}",
]
"""``--set`` overrides for a CLI run of seconds (no world model settings: baseline arms)."""
TINY_ARGS = [a for s in TINY_SETTINGS for a in ("--set", s)]
PENDULUM = [*TINY_SETTINGS, "env.id=Pendulum-v1", "world_model.use=none"]
"""``--set`` overrides for a Pendulum-v1 baseline run of a second (no MuJoCo)."""


ROOT = Path(__file__).resolve().parents[1]


def declared_defaults() -> dict:
    """The schema's defaults as declared: ``Config().to_dict()`` but with the world-model keys
    whose default is the kind's (``null``, resolved when a config is built) as ``None``."""
    declared = Config().to_dict()
    for key in KIND_DEFAULTS["spiking"]:
        declared["world_model"][key] = None
    return declared


TINY = [
    "actor.hidden_sizes=[16]",
    "actor.spike_ts=2",
    "critic.hidden_sizes=[16, 16]",
    "td3.batch_size=16",
    "train.start_steps=100",
    "train.update_after=50",
    "train.eval_every=100",
    "train.eval_episodes=2",
    "log.log_every=50",
    "log.progress=false",
    "env.kwargs={max_episode_steps: 50}",
    "world_model.ensemble_size=2",
    "world_model.num_elites=1",
    "world_model.hidden_size=8",
    "world_model.num_scales=2",
    "world_model.spike_ts=2",
    "world_model.pop_dim=3",
    "world_model.batch_size=16",
    "world_model.train_every=50",
    "world_model.train_steps=3",
    "dreaming.start_step=100",
    "dreaming.every=50",
    "dreaming.rollout_batch=16",
    "dreaming.horizon=2",
]
"""``--set`` overrides for a tiny dreaming run (50-step episodes)."""
RESUME_STEPS = 600
RESUME_ARGS = [
    *TINY,
    f"train.total_steps={RESUME_STEPS}",
    "train.checkpoint_every=100",
    "train.start_steps=150",
    "log.log_every=25",
]
"""The exact-resume and fork tests' runs."""


def final_state(run: Path) -> dict:
    state, _, problems = load_state_file(run / "checkpoints" / "state.pt")
    assert not problems
    return state


def assert_same(a: object, b: object, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict), path
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b, strict=True)):  # type: ignore[call-overload]
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def check_twin_critic_step(
    agent: TD3 | SAC, batch: Batch, y: torch.Tensor, q: torch.Tensor
) -> None:
    """One critic step of ``agent`` on ``batch`` has the loss ``sum_i mean_b (Q_i - y)^2`` of
    ``q`` ``[2, B]`` and ``y`` ``[B]`` computed before it, and moves each twin head's weights."""
    heads = [layer.weight.detach().clone() for layer in agent.critic.layers]
    loss, _ = agent.critic_update(batch)
    want = sum(((q[i] - y) ** 2).mean() for i in range(2))
    assert abs(loss.item() - want.item()) <= 1e-5 * abs(want.item())
    for before, layer in zip(heads, agent.critic.layers, strict=True):
        for i in range(2):
            assert not torch.equal(before[i], layer.weight[i])


def without_best(part: object) -> object:
    """A state's part without the counters' ``best_return`` (a fork's starts afresh)."""
    if isinstance(part, dict) and "best_return" in part:
        return {k: v for k, v in part.items() if k != "best_return"}
    return part


def records(path: Path) -> list[dict]:
    found, notes = read_jsonl(path)
    assert not notes, f"{path}: {notes}"
    return [rec for _, rec in found]


def stopped_and_resumed(cfg: object, run_dir: Path, stop_at: int) -> None:
    """Train ``cfg`` in ``run_dir`` to env step ``stop_at`` (an episode end), save the state,
    stop, then resume the run to its end (the other half of an exact-resume comparison)."""
    from spiking_dreamer.training.trainer import Trainer

    first = Trainer(cfg, run_dir)
    first.begin()
    while first.step < stop_at:
        first.advance()
    first.save_state()
    first.close()
    Trainer.resume(run_dir).run()


def pendulum_run(run_dir: Path, *overrides: str) -> Path:
    """Train a Pendulum-v1 baseline run of :data:`PENDULUM` (default 50 steps) into
    ``run_dir``; returns it."""
    from spiking_dreamer.config_loading import load_config
    from spiking_dreamer.training.trainer import Trainer

    Trainer(load_config(None, [*PENDULUM, "train.total_steps=50", *overrides]), run_dir).run()
    return run_dir


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (the benchmarks are not a package; as
    when run as scripts, they import each other by name from ``benchmarks/``)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.append(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_wandb_key(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No W&B API key for this test: no ``WANDB_API_KEY``/``WANDB_MODE``, and ``home`` (an
    empty directory) as ``HOME``, so no ``~/.netrc`` or W&B settings are found."""
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "wandb-config"))


def pendulum_config(tmp_path: Path) -> str:
    """A config file in ``tmp_path`` for a tiny 50-step Pendulum run without a model."""
    data: dict = {}
    for text in [*PENDULUM, "train.total_steps=50"]:
        key, value = text.split("=", 1)
        section, name = key.split(".")
        data.setdefault(section, {})[name] = yaml.safe_load(value)
    path = tmp_path / "pendulum.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)
