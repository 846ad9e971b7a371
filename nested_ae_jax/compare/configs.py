"""Configs derived from a chain config for the comparison: one split kind for every scale,
a scale without its nesting (raw upstream inputs or its own only), one autoencoder on every
raw input."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import pandas as pd

from .. import nesting
from ..config import Config, EncoderSpec, HeadSpec, InputGroup, ScaleSpec, replace_scale
from ..data import input_group_columns
from ..errors import ConfigError

SPLITS = ("random", "group_rows", "group_composition", "matched")
DEFAULT_SPLITS = ("random", "matched")  # the paper's protocol and the honest one


def with_epochs(cfg: Config, epochs: int | None) -> Config:
    """Every scale trained for ``epochs`` (None: as configured)."""
    if epochs is None:
        return cfg
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    for s in cfg.scales:
        cfg = replace_scale(cfg, s.name, **{"training.epochs": int(epochs)})
    return cfg


def _specs(cfg: Config) -> dict[str, ScaleSpec]:
    return cfg.specs


def raw_columns(cfg: Config, scale: str) -> dict[str, list[str]]:
    """{scale or ancestor: its own input columns as named in ``scale``'s data file}."""
    specs = _specs(cfg)
    maps = nesting.column_maps(specs, scale)
    return {name: [cmap.get(c, c) for c in input_group_columns(specs[name])]
            for name, cmap in maps.items()}


def _unique(cols: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(cols))


def group_columns(cfg: Config, scale: str, split: str) -> tuple[str, ...]:
    """The columns whose identical values form a CV group of ``scale`` for a split kind:
    group_rows: the whole raw encoder input row (own columns + upstream raw columns);
    group_composition: the raw inputs of the chain's first scale(s) (the composition)."""
    cols = raw_columns(cfg, scale)
    specs = _specs(cfg)
    if split == "group_rows":
        return _unique([c for name in cols for c in cols[name]])
    roots = [name for name in cols if not specs[name].upstream]
    return _unique([c for name in roots for c in cols[name]])


def _split_cv(cv, split: str, group_by: tuple[str, ...]):
    if split in ("random", "matched"):
        return dataclasses.replace(cv, kind="kfold", group_by=())
    return dataclasses.replace(cv, kind="group", group_by=group_by)


def split_config(cfg: Config, split: str) -> Config:
    """``cfg`` with every scale's cross-validation set to the split kind (n_splits, shuffle
    and random_state as configured): random, group_rows and group_composition split each
    scale on its own (chain.split = independent, the paper's protocol); matched deals folds
    per linked entity, shared by every scale (chain.split = matched). The honest splits
    (all but random) fit every scaler on each fold's training rows (scaler = train); random
    keeps the config's (the paper's: all rows)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    for s in cfg.scales:
        if s.cv.kind == "none":
            raise ConfigError(f"{cfg.source}: scale '{s.name}' has cv.kind = none; a comparison "
                              "needs cross-validation")
        cfg = replace_scale(cfg, s.name, cv=_split_cv(s.cv, split,
                                                      group_columns(cfg, s.name, split)),
                            **({} if split == "random" else {"scaler": "train"}))
    mode = "matched" if split == "matched" else "independent"
    return dataclasses.replace(cfg, chain=dataclasses.replace(cfg.chain, split=mode))


def single_scale_config(cfg: Config, scale: str, *, raw_upstream: bool,
                        frame: pd.DataFrame | None = None) -> tuple[Config, list[str]]:
    """A one-scale config of ``scale`` without the nesting: every latent input group is
    replaced by the upstream scales' own input groups read from this scale's file (raw_upstream)
    or dropped; heads that reconstruct a latent then reconstruct the raw group or are dropped.

    frame: this scale's rows; upstream numeric columns that are constant on them (e.g. a site
    that is always the same element in the device data) carry nothing there and are dropped.
    Returns the config and the dropped columns."""
    specs = _specs(cfg)
    spec = specs[scale]
    maps = nesting.column_maps(specs, scale)
    inputs: list[InputGroup] = []
    heads: list[HeadSpec] = []
    replaced: dict[str, list[str]] = {}
    dropped: list[str] = []
    taken = {g.name for g in spec.inputs}
    for g in spec.inputs:
        if g.kind != "latent":
            inputs.append(g)
            continue
        replaced[g.name] = []
        if not raw_upstream:
            continue
        chain = [g.scale] + sorted(nesting._ancestors(specs, g.scale))
        for up in chain:
            for ug in specs[up].inputs:
                if ug.kind == "latent":
                    continue
                name = ug.name if ug.name not in taken else f"{up}_{ug.name}"
                taken.add(name)
                if ug.kind == "numeric":
                    cols = tuple(maps[up].get(c, c) for c in ug.columns)
                    constant = [c for c in cols if frame is not None and c in frame.columns
                                and frame[c].nunique() <= 1]
                    dropped += constant
                    cols = tuple(c for c in cols if c not in constant)
                    if not cols:
                        continue
                    new = InputGroup(name=name, kind="numeric", columns=cols)
                else:
                    new = InputGroup(name=name, kind="categorical",
                                     column=maps[up].get(ug.column, ug.column))
                inputs.append(new)
                replaced[g.name].append(name)
    for h in spec.heads:
        if h.input in replaced:
            for name in replaced[h.input]:
                kind = "categorical" if next(x for x in inputs if x.name == name).kind == \
                    "categorical" else "reconstruction"
                loss = "" if kind == "categorical" else h.loss
                heads.append(dataclasses.replace(h, name=name, kind=kind, input=name,
                                                 loss=loss, reference=()))
        else:
            heads.append(h)
    if not any(g.kind != "latent" for g in inputs):
        raise ConfigError(f"scale '{scale}' has no inputs of its own")
    new_spec = dataclasses.replace(spec, inputs=tuple(inputs), heads=tuple(heads))
    return dataclasses.replace(cfg, scales=(new_spec,)), dropped


def single_autoencoder_config(cfg: Config) -> Config:
    """One scale on every raw numeric input of the chain (as named in the last scale's file),
    with the last scale's encoder and its own-descriptor reconstruction head's decoder."""
    last = cfg.scales[-1]
    cols = raw_columns(cfg, last.name)
    specs = _specs(cfg)
    numeric = []
    for name in [s.name for s in cfg.scales if s.name in cols]:
        maps = nesting.column_maps(specs, last.name)[name]
        numeric += [maps.get(c, c) for g in specs[name].inputs if g.kind == "numeric"
                    for c in g.columns]
    if any(g.kind == "categorical" for s in cfg.scales for g in s.inputs):
        raise ConfigError("the single-autoencoder comparison supports numeric inputs only")
    template = next((h for h in last.heads if h.kind == "reconstruction" and
                     last.group(h.input).kind == "numeric"), None)
    if template is None:
        raise ConfigError(f"scale '{last.name}' needs a reconstruction head of a numeric group")
    group = InputGroup(name="all_inputs", kind="numeric", columns=_unique(numeric))
    head = dataclasses.replace(template, name="all_inputs", input="all_inputs", reference=())
    enc: EncoderSpec = last.encoder
    spec = dataclasses.replace(last, name="single", inputs=(group,), heads=(head,), encoder=enc)
    return dataclasses.replace(cfg, scales=(spec,))


