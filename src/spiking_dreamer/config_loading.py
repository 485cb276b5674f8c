"""Loading a config: YAML files with ``base:`` chains, ``--set`` overrides, type coercion and
the key and type checks that name the offending key and its source.

A config file is a nested mapping whose sections match the dataclasses of
:mod:`spiking_dreamer.config`. A file may name another file under ``base:`` (relative to
itself); the base is loaded first and the file is deep-merged onto it. Every key is checked
against the schema: an unknown key, a value of the wrong type or an impossible value raises
:class:`ConfigError` naming the key, its source (file or ``--set``) and, for unknown keys, the
closest valid key.

Imports go one way: this module imports the schema (:mod:`spiking_dreamer.config`) and the
typed construction it shares with it (:mod:`spiking_dreamer.config_types`); neither imports
this one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from spiking_dreamer.config import RUN_SETTINGS, Config
from spiking_dreamer.config_types import build, deep_merge
from spiking_dreamer.errors import ConfigError
from spiking_dreamer.files import atomic_write


def with_run_settings(data: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the dotted ``settings`` (``{"log.wandb": True}``) applied; every key
    must be a run setting (:data:`RUN_SETTINGS`)."""
    out = dict(data)
    for key, value in settings.items():
        if key not in RUN_SETTINGS:
            raise ConfigError(
                f"{key} cannot change when a run continues: only {', '.join(RUN_SETTINGS)}"
            )
        section, name = key.split(".")
        out = deep_merge(out, {section: {name: value}}, "run settings")
    return out


def flatten_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (leaves are scalars or lists)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and v and k != "kwargs":
            out.update(flatten_keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_keys_and_types(data: Mapping[str, Any], source: str) -> None:
    """Raise :class:`ConfigError` for unknown keys or wrongly typed values in a partial config
    (value constraints, which may involve several keys, are checked on the merged config)."""
    build(Config, data, "", source, construct=False)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a nested mapping into a :class:`Config` (missing keys take their defaults;
    keys of older configs are read in their current form, :func:`upgrade_old_keys`)."""
    return build(Config, upgrade_old_keys(data)[0], "", source)


_OLD_MEMBER = {"sample": "random_elite", "elite_mean": "elite_mean"}


def upgrade_old_keys(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with the keys of older configs in their current form, and one note per key
    changed (what to write instead):

    * ``dreaming.enabled`` and ``value_gradient.enabled`` -> ``world_model.use`` (``false`` ->
      ``none``; ``true`` -> ``dreams``, or ``value_gradient`` when that is enabled); a
      ``dreaming.start_step`` beside ``value_gradient.enabled: true`` becomes
      ``value_gradient.start_step`` (it was when value gradients started);
    * ``dreaming.transition: sample | elite_mean`` -> ``dreaming.member: random_elite |
      elite_mean`` (one vocabulary with ``value_gradient.member``).

    Stored configs of older runs load through this, so they resume and fork unchanged."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    notes: list[str] = []
    dreaming = out.get("dreaming") if isinstance(out.get("dreaming"), dict) else {}
    vg = out.get("value_gradient") if isinstance(out.get("value_gradient"), dict) else {}
    dream_on, vg_on = dreaming.pop("enabled", None), vg.pop("enabled", None)
    if dream_on is not None or vg_on is not None:
        if vg_on is True and dream_on is False:
            raise ConfigError(
                "value_gradient.enabled: true needs the world model that dreaming.enabled: "
                "false removes; write world_model.use: value_gradient (or none)"
            )
        use = "value_gradient" if vg_on is True else None
        if use is None and dream_on is not None:
            use = "dreams" if dream_on else "none"
        if use is not None:
            if not isinstance(out.get("world_model"), dict):
                out["world_model"] = {}
            out["world_model"]["use"] = use
            old = " and ".join(
                f"{k}: {str(v).lower()}"
                for k, v in (("dreaming.enabled", dream_on), ("value_gradient.enabled", vg_on))
                if v is not None
            )
            notes.append(f"{old} is now world_model.use: {use}")
        if use == "value_gradient" and "start_step" in dreaming:
            vg["start_step"] = dreaming.pop("start_step")
            notes.append(
                "dreaming.start_step of a value-gradient run is now value_gradient.start_step"
            )
    if "transition" in dreaming:
        old_value = dreaming.pop("transition")
        dreaming["member"] = _OLD_MEMBER.get(old_value, old_value)
        notes.append(
            f"dreaming.transition: {old_value} is now dreaming.member: {dreaming['member']}"
        )
    for name, section in (("dreaming", dreaming), ("value_gradient", vg)):
        if name in out or section:
            out[name] = section
    return out, notes


def _upgraded(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """:func:`upgrade_old_keys`, with a warning naming ``source`` and what to write."""
    out, notes = upgrade_old_keys(data)
    for note in notes:
        warnings.warn(f"{source}: {note}; write the new form", FutureWarning, stacklevel=3)
    return out


class _ConfigYAMLLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (``*name``): nested aliases let a short text expand
    exponentially (in memory once copied, and in every message that shows the value)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            raise ValueError(f"YAML aliases (*{anchor}) are not supported in a config")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``text`` read as YAML by :class:`_ConfigYAMLLoader`.

    Raises:
        yaml.YAMLError: not valid YAML.
        ValueError: an alias, or an integer beyond Python's conversion limit (4,300 digits).
    """
    return yaml.load(text, Loader=_ConfigYAMLLoader)


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """Read ``path`` with its ``base:`` chain merged; returns the data and a source label."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: circular 'base:' chain {[str(p) for p in (*chain, path)]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "a config file is YAML in UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    data = _upgraded(data, str(path))
    # Check this file's own keys before merging so errors name the right file.
    check_keys_and_types(data, str(path))
    if base is None:
        return data, str(path)
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a file name, got {base!r}")
    base_data, base_src = _read_yaml(path.parent / base, (*chain, path))
    return deep_merge(base_data, data, str(path)), f"{path} (base {base_src})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as YAML (``128``, ``true``, ``[64, 64]``)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: the key must look like section.key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"--set {text!r}: cannot parse the value: {e}") from None
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a nested mapping, validating each against the schema."""
    out = dict(data)
    for text in overrides:
        parts, value = parse_override(text)
        nested: Any = value
        for p in reversed(parts):
            nested = {p: nested}
        nested = _upgraded(nested, f"--set {text!r}")
        check_keys_and_types(nested, f"--set {text!r}")
        out = deep_merge(out, nested, "--set")
    return out


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load ``path`` (with its ``base:`` chain), apply overrides and validate everything."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        data, source = _read_yaml(Path(path))
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    if overrides:
        source = f"{source} with --set overrides"
    return config_from_dict(data, source)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config as YAML (atomically: readers see the old or new file)."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))
