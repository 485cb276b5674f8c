"""Plain mappings into typed, frozen (nested) dataclasses: key and type checks, coercion, and
the mapping helpers the config schema and its loading share.

:func:`build` checks a mapping against a dataclass's fields (an unknown key, with the closest
valid one, or a value of the wrong type raises :class:`ConfigError` naming the key and its
source), converts lists to tuples and YAML 1.1's ``"1e5"`` strings to numbers, and constructs
the dataclass (whose ``__post_init__`` checks the values). Knows no particular schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from spiking_dreamer.errors import ConfigError


def plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    return x


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    bad = ConfigError(f"{key}: expected {tp.__name__}, got {shown} ({type(value).__name__})")
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


def build(cls: type, data: Any, prefix: str, source: str, construct: bool = True) -> Any:
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
            kwargs[key] = build(tp, value, f"{prefix}{key}.", source, construct)
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


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v, source)
        else:
            out[k] = v
    return out
