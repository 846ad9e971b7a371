"""Module references: ``module = "file.py:factory"`` or ``"package.module:factory"`` keys
split, made absolute against the config's folder and mapped over a scale's components."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from .schema import ScaleSpec


def split_module_reference(ref: str, where: str) -> tuple[str, str]:
    """``"file.py:factory"`` or ``"package.module:factory"`` -> (file or module, factory)."""
    path, sep, factory = ref.rpartition(":")
    if not sep or not path or not factory.isidentifier():
        raise ConfigError(f"{where} = {ref!r}: expected 'file.py:factory' (a file relative to "
                          "the config's folder) or 'package.module:factory'")
    return path, factory


def resolve_module(ref: str, base: Path, where: str) -> str:
    """A module reference with its file (if it names one) made absolute against ``base`` and
    checked to exist; a package reference is left as it is (imported when the model is
    built)."""
    path, factory = split_module_reference(ref, where)
    if not path.endswith(".py"):
        return ref
    file = Path(path).expanduser()
    file = file if file.is_absolute() else (base / file).resolve()
    if not file.is_file():
        raise ConfigError(f"{where} = {ref!r}: file not found: {file} (a module file is "
                          "relative to the config's folder)")
    return f"{file}:{factory}"


def map_modules(spec: ScaleSpec, fn) -> ScaleSpec:
    """The scale spec with ``fn(ref, key)`` applied to the module reference of every component
    that has one (key: ``encoder.module`` or ``heads.H.module``, for messages)."""
    enc = spec.encoder
    if enc.module:
        enc = dataclasses.replace(enc, module=fn(enc.module, "encoder.module"))
    heads = tuple(dataclasses.replace(h, module=fn(h.module, f"heads.{h.name}.module"))
                  if h.module else h for h in spec.heads)
    return dataclasses.replace(spec, encoder=enc, heads=heads)
