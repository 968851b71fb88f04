"""Strict TOML -> frozen dataclass loading, shared by teacher configs, recipes and device profiles.

`build(cls, table, where)` checks every key of a TOML table against the fields of a keyword-only dataclass
(unknown key -> "did you mean ..."), checks each value against the field's type (int, float, bool, str,
Literal, optional, tuple, nested dataclass, list of dataclasses), then calls the constructor so that the
dataclass's own `__post_init__` checks run too. It gathers every problem of the whole table before raising
one `ConfigError`, so a user fixes a file in one pass. Defaults live in the dataclasses only.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from vjepa_edge.errors import ConfigError

T = TypeVar("T")


# Inputs beyond these are typos (a 100000-pixel clip, 100000 frames), not models anyone runs: refused up front.
MAX_FRAMES = 1024
MAX_SIZE = 4096
MAX_FPS = 1000.0


def digest(data: Any, length: int) -> str:
    """The first `length` hex digits of the sha256 of `data` as sorted JSON: every cache key and run digest."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:length]


def drop_defaults(section: dict[str, Any], cls: type, names: tuple[str, ...]) -> None:
    """Remove from `section` (a config section as a dict) each of `names` that holds `cls`'s default: options added
    after runs were keyed are hashed only when set, so those runs keep their key."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name in names:
        if name in section and section[name] == defaults[name]:
            del section[name]


def check_count(name: str, value: Any, problems: list[str], *, minimum: int = 1, maximum: int | None = None) -> None:
    """An integer in [minimum, maximum]; the problem names the value and the range."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None and value > maximum:
        problems.append(f"{name}={value!r}: at most {maximum}")
    elif not ok:
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        problems.append(f"{name}={value!r}: need {what}")


def check_number(name: str, value: Any, problems: list[str], *, positive: bool = True, maximum: float | None = None):
    """A finite number (NaN and infinities never pass), positive unless `positive=False` (then 0 or more)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value <= 0 if positive else value < 0):
        ok = False
    if ok and maximum is not None and value > maximum:
        problems.append(f"{name}={value!r}: at most {maximum}")
    elif not ok:
        problems.append(f"{name}={value!r}: need a finite {'positive number' if positive else 'number, 0 or more'}")


def load_toml(path: str | Path, *, what: str = "config") -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is one ConfigError that names it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"no such {what} file: {p}")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from None


def unknown_key_problems(keys: typing.Iterable[str], allowed: typing.Collection[str], where: str) -> list[str]:
    """One problem per unknown key, with the closest allowed key where one is close."""
    problems = []
    for key in keys:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
        problems.append(f"{_join(where, key)}: unknown key{hint}")
    return problems


def build(cls: type[T], table: Any, where: str = "") -> T:
    """Build dataclass `cls` from a TOML table, or raise one ConfigError listing every problem."""
    value, problems = _build(cls, table, where)
    if problems:
        raise ConfigError(f"invalid {where or cls.__name__}", problems=problems)
    return value  # type: ignore[return-value]


def to_dict(obj: Any) -> Any:
    """A dataclass as plain TOML/JSON data (tuples become lists, None fields are left out)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is not None:
                out[f.name] = to_dict(v)
        return out
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _build(cls: type, table: Any, where: str) -> tuple[Any, list[str]]:
    if not isinstance(table, dict):
        return None, [f"{where or cls.__name__}: expected a table, got {type(table).__name__} {table!r}"]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems = unknown_key_problems(table, fields, where)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{_join(where, name)}: required key is missing")
            continue
        value, sub = _convert(hints[name], table[name], _join(where, name))
        problems += sub
        if not sub:
            kwargs[name] = value
    required = [
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if any(n not in kwargs for n in required):  # missing, or itself invalid: nothing to construct
        return None, problems
    # Construct even after key or type problems (the bad fields fall back to defaults), so the dataclass's own
    # checks of the other values are reported in the same pass.
    try:
        value = cls(**kwargs)
    except ConfigError as e:
        own = e.problems or [e.message]
        return None, problems + [f"{where}: {p}" if where else p for p in own]
    return (None, problems) if problems else (value, [])


def _convert(tp: Any, value: Any, where: str) -> tuple[Any, list[str]]:
    """Check `value` against type `tp`; return the converted value (lists -> tuples) and the problems."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None, []
        options = [a for a in args if a is not type(None)]
        for option in options:
            converted, problems = _convert(option, value, where)
            if not problems:
                return converted, []
        if len(options) == 1:
            return _convert(options[0], value, where)
        return None, [f"{where}: expected {_describe(tp)}, got {value!r}"]
    if origin is Literal:
        if value in args and type(value) is type(args[0]):
            return value, []
        return None, [f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}"]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return None, [f"{where}: expected a list ({_describe(tp)}), got {value!r}"]
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(args[0], v) for v in value]
        elif len(args) != len(value):
            return None, [f"{where}: expected {len(args)} values, got {len(value)} ({value!r})"]
        else:
            items = list(zip(args, value, strict=True))
        out, problems = [], []
        for i, (t, v) in enumerate(items):
            c, p = _convert(t, v, _join(where, i))
            out.append(c)
            problems += p
        return tuple(out), problems
    if origin is list:
        if not isinstance(value, list):
            return None, [f"{where}: expected a list, got {value!r}"]
        out, problems = [], []
        for i, v in enumerate(value):
            c, p = _convert(args[0], v, _join(where, i))
            out.append(c)
            problems += p
        return tuple(out), problems
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        return (value, []) if isinstance(value, bool) else (None, [f"{where}: expected true or false, got {value!r}"])
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
        return None, [f"{where}: expected an integer, got {value!r}"]
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):  # TOML has nan and inf; no setting of ours means them
                return None, [f"{where}: {value!r} is not a finite number"]
            return float(value), []
        return None, [f"{where}: expected a number, got {value!r}"]
    if tp is str:
        return (value, []) if isinstance(value, str) else (None, [f"{where}: expected a string, got {value!r}"])
    if tp is Any:
        return value, []
    raise TypeError(f"unsupported config field type {tp!r} at {where}")  # a bug in a config class, not user input


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        return "a list of " + (_describe(args[0]) if args[-1] is Ellipsis else f"{len(args)} values")
    if tp is type(None):
        return "nothing"
    return getattr(tp, "__name__", str(tp))
