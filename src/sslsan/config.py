"""Typed dataclass configs: load from YAML/JSON, apply `key.sub=value` overrides, save resolved.

A config class is a (possibly nested) dataclass. Unknown keys are errors, and values are checked
against the field types, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sslsan.utils.io import atomic_write_text

T = TypeVar("T")

PACKAGE_CONFIGS = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config file or override that does not fit the config class."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert `value` (from YAML or a command-line string) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a nested dict; unknown keys raise ConfigError."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a copy of `cfg` with `a.b.c=value` overrides applied (values parsed as YAML scalars)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a config section")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r}; valid here: {sorted(node)}")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() != "" else ""
    return from_dict(type(cfg), data)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a config shipped with the package (e.g. `synth_cpu`)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    for candidate in (PACKAGE_CONFIGS / f"{name_or_path}.yaml", PACKAGE_CONFIGS / str(name_or_path)):
        if candidate.exists():
            return candidate
    shipped = sorted(q.stem for q in PACKAGE_CONFIGS.rglob("*.yaml")) if PACKAGE_CONFIGS.exists() else []
    raise ConfigError(f"config {str(name_or_path)!r} not found (not a file; shipped configs: {shipped})")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of `cls`, updated by a YAML/JSON file (optional), then by overrides.

    A class may define `migrate(data, overrides) -> (data, overrides)` (renamed keys of older files)
    and `defaults(data, overrides) -> instance` (defaults that depend on what the file and overrides
    choose, e.g. `TrainConfig`'s method); both are optional.
    """
    data, where, overrides = {}, "config", list(overrides or [])
    if path is not None:
        p = resolve_config_path(path)
        where = str(p)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML/JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
    if hasattr(cls, "migrate"):
        data, overrides = cls.migrate(data, overrides)
    cfg = cls.defaults(data, overrides) if hasattr(cls, "defaults") else cls()
    if data:
        base = to_dict(cfg)
        _deep_update(base, data, where)
        cfg = from_dict(cls, base, where=where)
    return apply_overrides(cfg, overrides)


def _deep_update(base: dict, new: dict, where: str) -> None:
    for k, v in new.items():
        if k not in base:
            raise ConfigError(f"{where}: unknown key {k!r}; valid keys: {sorted(base)}")
        if isinstance(base[k], dict) and isinstance(v, dict):
            _deep_update(base[k], v, f"{where}.{k}")
        else:
            base[k] = v


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
