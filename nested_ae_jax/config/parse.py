"""Parsing: a TOML document (or file) read into a validated :class:`Config`, each table's
keys, types and values checked against the schema's declarations."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from ..errors import ConfigError, did_you_mean
from .modules import map_modules, resolve_module
from .schema import (BUILTIN_KEYS, ChainSpec, Config, CVSpec, EncoderSpec, HeadSpec, InputGroup,
                     ScaleSpec, TrainingSpec)
from .validate import validate


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if args and typing.get_origin(args[0]) is tuple:  # mapping stored as pairs
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a table {{key = value}}")
            item = typing.get_args(args[0])[1]
            return tuple((str(k), _freeze(v, f"{where}.{k}") if item is Any else
                          _convert(v, item, f"{where}.{k}")) for k, v in value.items())
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                and args[0] is str:
            value = [value]  # a single column name is accepted for a list of names
        if not isinstance(value, list):
            plural = {int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
            raise ConfigError(f"{where} must be a list of {plural}, got {value!r}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp in (str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    return value


def _freeze(value: Any, where: str) -> Any:
    """A module option: a number, string, boolean or (nested) list of them, lists as tuples
    (so that specs stay hashable)."""
    if isinstance(value, list):
        return tuple(_freeze(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"{where} must be a number, string, boolean or list, got {value!r}")


def _check(value: Any, meta: dict, where: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, tuple):
            continue
        if "choices" in meta and v not in meta["choices"]:
            choices = ", ".join(c for c in meta["choices"] if c)
            raise ConfigError(f"{where} = {v!r} is not one of: {choices}"
                              f"{did_you_mean(str(v), meta['choices'])}")
        if "gt" in meta and not v > meta["gt"]:
            raise ConfigError(f"{where} must be > {meta['gt']}, got {v!r}")
        if "min" in meta and not v >= meta["min"]:
            raise ConfigError(f"{where} must be >= {meta['min']}, got {v!r}")
        if "lt" in meta and not v < meta["lt"]:
            raise ConfigError(f"{where} must be < {meta['lt']}, got {v!r}")


def _parse_table(cls: type, table: Any, where: str, **given: Any) -> Any:
    """Build dataclass ``cls`` from a TOML table: unknown keys, types and values are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in given}
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, known)}")
    if table.get("module") and cls in (EncoderSpec, HeadSpec):
        for key in BUILTIN_KEYS:
            if key in table:
                raise ConfigError(f"{where}: '{key}' configures the built-in network; with "
                                  f"module = {table['module']!r} set it in the module's "
                                  "options instead, or remove it")
    if table.get("options") and not table.get("module") and cls in (EncoderSpec, HeadSpec):
        raise ConfigError(f"{where}.options: only used with 'module' (a user Flax module)")
    kwargs = dict(given)
    for name, f in known.items():
        if name in table:
            value = _convert(table[name], hints[name], f"{where}.{name}")
            _check(value, f.metadata, f"{where}.{name}")
            kwargs[name] = value
        elif f.default is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}' ({f.metadata['doc']})")
    return cls(**kwargs)


def _parse_scale(name: str, table: Any, where: str) -> ScaleSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    table = dict(table)
    nested: dict[str, Any] = {"name": name}
    for key, cls in (("encoder", EncoderSpec), ("training", TrainingSpec), ("cv", CVSpec)):
        if key in table:
            nested[key] = _parse_table(cls, table.pop(key), f"{where}.{key}")
    for key, cls in (("inputs", InputGroup), ("heads", HeadSpec)):
        sub = table.pop(key, {})
        if not isinstance(sub, dict) or not sub:
            raise ConfigError(f"{where}.{key} must hold at least one [{where}.{key}.NAME] table")
        nested[key] = tuple(_parse_table(cls, t, f"{where}.{key}.{n}", name=n)
                            for n, t in sub.items())
    return _parse_table(ScaleSpec, table, where, **nested)


def parse_config(doc: dict, source: str = "<config>",
                 base: str | os.PathLike | None = None) -> Config:
    """Validate a TOML document (already parsed to a dict) into a :class:`Config`.

    Module files (``module = "file.py:factory"``) are made absolute against ``base``, default
    the folder of ``source`` (the working directory for an in-memory ``<...>`` source)."""
    doc = dict(doc)
    scales = doc.pop("scales", None)
    if not isinstance(scales, dict) or not scales:
        raise ConfigError(f"{source}: needs at least one [scales.NAME] table")
    chain = _parse_table(ChainSpec, doc.pop("chain", {}), f"{source}: chain")
    for key in doc:
        raise ConfigError(f"{source}: unknown top-level key '{key}'"
                          f"{did_you_mean(key, ['scales', 'chain'])}")
    parsed = tuple(_parse_scale(n, t, f"{source}: scales.{n}") for n, t in scales.items())
    if base is None:
        base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
    parsed = tuple(map_modules(s, lambda ref, key: resolve_module(
        ref, Path(base), f"{source}: scales.{s.name}.{key}")) for s in parsed)
    cfg = Config(scales=parsed, chain=chain, source=source)
    validate(cfg, source)
    return cfg


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(doc, str(path))
