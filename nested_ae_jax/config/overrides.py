"""Serialisation and overrides: the resolved config as a TOML-ready dict (written to a run
directory), and copies with ``--set`` settings or scale fields changed."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

from ..errors import ConfigError, did_you_mean
from .parse import parse_config
from .schema import BUILTIN_KEYS, Config


def _table(obj: Any) -> dict:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in ("name", "source"):
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = _table(value)
        elif f.name in ("inputs", "heads"):
            out[f.name] = {v.name: _table(v) for v in value}
        elif f.name in ("rename", "finetune_weights", "reference"):
            out[f.name] = dict(value)
        elif f.name == "options":
            out[f.name] = {k: _thaw(v) for k, v in value}
        elif f.name in BUILTIN_KEYS and getattr(obj, "module", ""):
            continue  # a user module: the built-in network's keys do not apply
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def config_to_dict(cfg: Config) -> dict:
    """The config as a TOML-ready dict with every default filled in; parse_config reads it."""
    return {"chain": _table(cfg.chain), "scales": {s.name: _table(s) for s in cfg.scales}}


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (1e-3, 12, true, [8, 8], "x"); anything
    that is not TOML is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def override(cfg: Config, settings: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with settings changed and validated again.

    Keys are dotted paths: ``SCALE.encoder.l1``, ``SCALE.heads.gap.dropout``, ``chain.feed``;
    the scale name may be left out when the config has a single scale. Unknown paths and bad
    values are ConfigErrors naming the setting.
    """
    doc = config_to_dict(cfg)
    for key, value in settings.items():
        table, leaf = _locate(doc, key)
        table[leaf] = value
    return parse_config(doc, cfg.source)


def lookup(cfg: Config, key: str) -> Any:
    """The value of setting ``key`` (a dotted path, as :func:`override` takes) in ``cfg``."""
    table, leaf = _locate(config_to_dict(cfg), key)
    return table[leaf]


def _locate(doc: dict, key: str) -> tuple[dict, str]:
    """The table of ``doc`` (``config_to_dict``) holding setting ``key`` and its last name;
    a ConfigError naming the setting when the path does not exist."""
    scales = doc["scales"]
    parts = key.split(".")
    if parts[0] == "chain":
        table, rest, where = doc["chain"], parts[1:], "chain"
    elif parts[0] in scales:
        table, rest, where = scales[parts[0]], parts[1:], f"scales.{parts[0]}"
    elif len(scales) == 1:
        (only,) = scales
        table, rest, where = scales[only], parts, f"scales.{only}"
    else:
        raise ConfigError(f"setting '{key}': start it with a scale name, one of "
                          f"{list(scales)}{did_you_mean(parts[0], scales)}")
    if not rest:
        raise ConfigError(f"setting '{key}' names a table, not a key")
    for p in rest[:-1]:
        if not isinstance(table.get(p), dict):
            tables = [k for k, v in table.items() if isinstance(v, dict)]
            raise ConfigError(f"setting '{key}': {where} has no table '{p}'"
                              f"{did_you_mean(p, tables)}")
        table, where = table[p], f"{where}.{p}"
    if rest[-1] not in table:
        raise ConfigError(f"setting '{key}': {where} has no key '{rest[-1]}'"
                          f"{did_you_mean(rest[-1], table)}")
    return table, rest[-1]


def replace_scale(cfg: Config, name: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with fields of scale ``name`` (or of its sub-tables) replaced.

    ``changes`` keys are ScaleSpec fields or ``"encoder.latent_size"``-style dotted paths.
    """
    def apply(obj: Any, path: list[str], value: Any) -> Any:
        if len(path) == 1:
            return dataclasses.replace(obj, **{path[0]: value})
        return dataclasses.replace(obj, **{path[0]: apply(getattr(obj, path[0]), path[1:],
                                                          value)})
    scales = []
    for s in cfg.scales:
        if s.name == name:
            for key, value in changes.items():
                s = apply(s, key.split("."), value)
        scales.append(s)
    return dataclasses.replace(cfg, scales=tuple(scales))
