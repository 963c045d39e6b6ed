"""The machinery behind :mod:`scrm.config`: typed sections, checks, and a YAML 1.2 reader.

Kept apart from config.py so that config.py holds nothing but the settings themselves.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ScrmError

Check = Callable[[Any], str | None]


class ConfigError(ScrmError):
    """A params.yaml problem, naming the dotted key."""


# ---------------------------------------------------------------------------------------------
# checks (a check returns the broken rule as text, or None)
# ---------------------------------------------------------------------------------------------
def between(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
            open_hi: bool = False) -> Check:
    """Numeric range; None bounds are unbounded; a None value (where allowed) passes."""
    def check(v: Any) -> str | None:
        if v is None or isinstance(v, str):
            return None
        if lo is not None and (v <= lo if open_lo else v < lo):
            return f"must be {'>' if open_lo else '>='} {lo}"
        if hi is not None and (v >= hi if open_hi else v > hi):
            return f"must be {'<' if open_hi else '<='} {hi}"
        return None
    return check


POSITIVE = between(0, open_lo=True)
NON_NEGATIVE = between(0)
FRACTION = between(0, 1, open_lo=True, open_hi=True)


def each(check: Check) -> Check:
    def run(v: Any) -> str | None:
        for x in v or ():
            why = check(x)
            if why:
                return f"every item {why} (got {x!r})"
        return None
    return run


def regexes(v: Any) -> str | None:
    for pattern in v or ():
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"holds an invalid regular expression {pattern!r} ({exc})"
    return None


def req(check: Check | None = None) -> Any:
    """A required field with an optional check."""
    return field(metadata={"check": check} if check else {})


# ---------------------------------------------------------------------------------------------
# the generic loader
# ---------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (int, float, bool, str, None, Literal, tuple, dict, Section, unions)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"params.yaml: {where} = {value!r} is not a valid "
                          f"{' or '.join(_type_name(a) for a in typing.get_args(tp))}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"params.yaml: {where} = {value!r}: choose one of "
                          f"{', '.join(map(str, typing.get_args(tp)))}")
    elif tp is Any:
        return value
    elif tp is bool:
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
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            item = typing.get_args(tp)[0]
            return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    elif origin is dict:
        if isinstance(value, Mapping):
            kt, vt = typing.get_args(tp)
            return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    elif isinstance(tp, type) and issubclass(tp, Section):
        if isinstance(value, Mapping):
            return tp.from_mapping(value, where)
    raise ConfigError(f"params.yaml: {where} = {value!r} is not a valid {_type_name(tp)}")


@dataclass(frozen=True)
class Section:
    """Base of every settings class: built from a mapping, every key required and checked."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "",
                     fallback: Mapping[str, Any] | None = None) -> Any:
        """Validate ``data`` (the section at dotted path ``where``); ``fallback`` fills ``seed``."""
        data = dict(data or {})
        known = cls.keys()
        unknown = sorted(set(data) - set(known))
        if unknown:
            name = f"{where}.{unknown[0]}" if where else unknown[0]
            raise ConfigError(f"params.yaml: unknown key {name}; known keys"
                              f"{' of ' + where if where else ''}: {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        kw: dict[str, Any] = {}
        for f in fields(cls):
            key = f"{where}.{f.name}" if where else f.name
            if f.name not in data:
                if f.name == "seed" and fallback and "seed" in fallback:
                    data["seed"] = fallback["seed"]
                else:
                    raise ConfigError(f"params.yaml: missing key {key} (every setting is stated "
                                      f"in params.yaml; see the comment beside it there)")
            value = _coerce(data[f.name], hints[f.name], key)
            check = f.metadata.get("check")
            why = check(value) if check else None
            if why:
                raise ConfigError(f"params.yaml: {key} = {value!r} {why}")
            kw[f.name] = value
        obj = cls(**kw)
        obj.validate(where)
        return obj

    def validate(self, where: str) -> None:
        """Cross-field rules of a section (override); raise ConfigError naming the keys."""

    def replace(self, **changes: Any) -> Any:
        from dataclasses import replace
        return replace(self, **changes)


class _Yaml12Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 booleans: only true/false (any case) are booleans. libyaml's parser
    where PyYAML has it (the same documents, a tenth of the time: settings are read by every stage
    and many tests), the pure-Python one elsewhere."""


_Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def read_yaml(path: Path) -> Any:
    """Parse with the YAML 1.2-boolean SafeLoader (safe: no Python objects are built)."""
    loader = _Yaml12Loader(path.read_text(encoding="utf-8"))
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
