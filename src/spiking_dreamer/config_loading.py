"""Loading a config: YAML files with ``base:`` chains, ``--set`` overrides, type coercion and
the key and type checks that name the offending key and its source.

A config file is a nested mapping whose sections match the dataclasses of
:mod:`spiking_dreamer.config`. A file may name another file under ``base:`` (relative to
itself); the base is loaded first and the file is deep-merged onto it. Every key is checked
against the schema: an unknown key, a value of the wrong type or an impossible value raises
:class:`ConfigError` naming the key, its source (file or ``--set``) and, for unknown keys, the
closest valid key.

Imports: this module does not import :mod:`spiking_dreamer.config` at module level, so the
schema module can import (and re-export) everything here at its top without an import cycle.
The three functions that need the schema itself (:class:`~spiking_dreamer.config.Config` and
:data:`~spiking_dreamer.config.RUN_SETTINGS`: :func:`config_from_dict`,
:func:`check_keys_and_types`, :func:`with_run_settings`) import it when called, when both
modules are complete. Callers keep importing from :mod:`spiking_dreamer.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from spiking_dreamer.errors import ConfigError

if TYPE_CHECKING:
    from spiking_dreamer.config import Config


def with_run_settings(data: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the dotted ``settings`` (``{"log.wandb": True}``) applied; every key
    must be a run setting (:data:`RUN_SETTINGS`)."""
    from spiking_dreamer.config import RUN_SETTINGS

    out = dict(data)
    for key, value in settings.items():
        if key not in RUN_SETTINGS:
            raise ConfigError(
                f"{key} cannot change when a run continues: only {', '.join(RUN_SETTINGS)}"
            )
        section, name = key.split(".")
        out = _deep_merge(out, {section: {name: value}}, "run settings")
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


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    bad = ConfigError(f"{key}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
    if tp in (float, int) and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" and "1e5" as strings
            value = int(value) if tp is int and value.strip().isdigit() else float(value)
        except ValueError:
            raise bad from None
    if isinstance(value, bool) and tp is not bool:
        raise bad
    if tp is int and isinstance(value, float) and value.is_integer():  # 1e5, "2.5e4"; not 1.5
        value = int(value)
    if tp is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, tp):
        raise bad
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # X | None: null, or a value of X
        (inner,) = (a for a in args if a is not type(None))
        return None if value is None else _coerce(value, inner, key)
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a mapping with string keys, got {value!r}")
        return dict(value)
    if tp in (bool, int, float, str):
        return _coerce_scalar(value, tp, key)
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a schema bug, not user input


def _unknown_key(key: str, valid: Iterable[str], prefix: str, source: str) -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(
        f"{source}: unknown key '{prefix}{key}'{hint} (valid keys: {', '.join(sorted(valid))})"
    )


def _build(cls: type, data: Any, prefix: str, source: str, construct: bool = True) -> Any:
    """Check ``data`` against the dataclass ``cls`` (keys and types) and, if ``construct``,
    build it (which also runs the value checks in ``__post_init__``)."""
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"{source}: {where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(str(key), fields, prefix, source)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.", source, construct)
        else:
            try:
                kwargs[key] = _coerce(value, tp, f"{prefix}{key}")
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
    if not construct:
        return kwargs
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_keys_and_types(data: Mapping[str, Any], source: str) -> None:
    """Raise :class:`ConfigError` for unknown keys or wrongly typed values in a partial config
    (value constraints, which may involve several keys, are checked on the merged config)."""
    from spiking_dreamer.config import Config

    _build(Config, data, "", source, construct=False)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a nested mapping into a :class:`Config` (missing keys take their defaults)."""
    from spiking_dreamer.config import Config

    return _build(Config, data, "", source)


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v, source)
        else:
            out[k] = v
    return out


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """Read ``path`` with its ``base:`` chain merged; returns the data and a source label."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: circular 'base:' chain {[str(p) for p in (*chain, path)]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "a config file is YAML in UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    # Check this file's own keys before merging so errors name the right file.
    check_keys_and_types(data, str(path))
    if base is None:
        return data, str(path)
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a file name, got {base!r}")
    base_data, base_src = _read_yaml(path.parent / base, (*chain, path))
    return _deep_merge(base_data, data, str(path)), f"{path} (base {base_src})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as YAML (``128``, ``true``, ``[64, 64]``)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: the key must look like section.key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
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
        check_keys_and_types(nested, f"--set {text!r}")
        out = _deep_merge(out, nested, "--set")
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
    """Write the fully resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
