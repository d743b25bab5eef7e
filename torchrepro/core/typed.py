"""Build typed dataclasses from plain YAML dicts, with errors a user can act on.

A config is a tree of dataclasses. :func:`from_dict` walks a YAML mapping against that tree and rejects:
unknown keys (with the closest valid key as a "did you mean" hint), values of the wrong type (naming the
key, the expected type and the value given) and values outside a ``Literal``. Dataclasses may define a
``check(self, where: str)`` method for cross-field rules (e.g. "this path must exist"); it runs after the
fields are converted.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from torchrepro.core.errors import ConfigError


def closest(name: str, candidates: typing.Iterable[str]) -> str | None:
    """Closest candidate to ``name`` (for "did you mean" hints), or None if nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_key_error(key: str, where: str, valid: typing.Iterable[str]) -> ConfigError:
    """The error for a key that the schema does not have, with a hint when a valid key is close."""
    valid = sorted(valid)
    full = f"{where}.{key}" if where else key
    hint = closest(key, valid)
    suggestion = f"did you mean '{(where + '.') if where else ''}{hint}'?" if hint else f"valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key '{full}': {suggestion}")


def type_name(tp: Any) -> str:
    """Readable name of a type annotation, as a user would write it in YAML terms."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        args = typing.get_args(tp)
        return f"mapping of {type_name(args[1])}" if args else "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise _type_error(where, tp, value)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"config key '{where}' must be one of {type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(where, tp, value)
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(where, tp, value)
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {_convert(k, key_tp, where): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(where, tp, value, expected="mapping")
        return from_dict(tp, value, where)
    return _convert_scalar(value, tp, where)


def _convert_scalar(value: Any, tp: Any, where: str) -> Any:
    # bool is a subclass of int in Python: reject True for an int field and 1 for a bool field explicitly.
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, tp):
        return value
    raise _type_error(where, tp, value)


def _type_error(where: str, tp: Any, value: Any, expected: str | None = None) -> ConfigError:
    return ConfigError(
        f"config key '{where}' expects {expected or type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``data``; ``where`` is the dotted path used in error messages."""
    if not isinstance(data, dict):
        raise _type_error(where or "<root>", cls, data, expected="mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise unknown_key_error(str(key), where, fields)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{where}.{name}" if where else name)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        key = f"{where}.{missing[0]}" if where else missing[0]
        raise ConfigError(f"config key '{key}' is required but missing: add it to the config or pass {key}=...")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where)
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass tree → plain YAML-safe dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
