"""The nesting combinator: per-scale models composed into one differentiable chain.

A chain's parameters are one pytree ``{SCALE: ScaleEntry(params, stats)}``. Its ``apply``
maps raw inputs of every scale, *for the same rows*, to every scale's outputs: a scale's latent
input group receives the upstream scale's latent, computed in the same graph, and standardises
it with statistics stored in the downstream scale's ``stats``. Hence::

    grad = jax.grad(lambda x: chain.apply(cp, {"atomic": {"descriptors": x}, "device": dev})
                    ["device"].heads["pce"].sum())(x_atomic)

is the sensitivity of the device property to the raw atomic descriptors through the atomic
scaler, AE1's encoder, the latent re-standardisation and AE2. An upstream scale may be an
*ensemble* (leading model axis on its params and stats): its outputs are then averaged.

This module also says where each scale's raw inputs are found in a downstream scale's data
file (:func:`column_maps`, :func:`chain_inputs`). Which *trained* models make up a chain is
``trained``'s business.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import pandas as pd

from .config import Config, InputGroup, ScaleSpec
from .data import Categories, encode_inputs, input_group_columns
from .model import Params, ScaleModel, ScaleOutputs, Stats


class ScaleEntry(NamedTuple):
    """One scale's part of a chain's parameters: trained weights and fixed scalers."""

    params: Params
    stats: Stats


ChainParams = dict[str, ScaleEntry]


class Chain(NamedTuple):
    """init(key) -> ChainParams (random weights, identity scalers); apply(chain_params,
    inputs) -> {SCALE: outputs}; ``inputs`` = {SCALE: {GROUP: raw array}} for every scale's
    own (non-latent) groups, all for the same N rows."""

    init: Callable[[jax.Array], ChainParams]
    apply: Callable[[ChainParams, dict], dict[str, ScaleOutputs]]
    models: dict[str, ScaleModel]
    ensembles: frozenset[str]


def identity_stats(model: ScaleModel) -> dict:
    """mean 0, scale 1 for every standardised group (a freshly built chain)."""
    return {g.name: {"mean": jnp.zeros(model.dims.width(g.name)),
                     "scale": jnp.ones(model.dims.width(g.name))}
            for g in model.spec.inputs if g.kind != "categorical"}


def nest(models: dict[str, ScaleModel], ensembles: frozenset[str] = frozenset()) -> Chain:
    """Compose scale models (dict in dependency order) into one chain.

    ensembles: scales whose params/stats carry a leading model axis; their outputs (latent and
    heads) are the mean over models.
    """
    order = list(models)
    for name, m in models.items():
        for up in m.spec.upstream:
            if up not in models or order.index(up) > order.index(name):
                raise ValueError(f"scale '{name}' takes the latent of '{up}', which must come "
                                 "earlier in the chain")

    def init(key: jax.Array) -> ChainParams:
        keys = jax.random.split(key, len(order))
        return {n: ScaleEntry(models[n].init(k), identity_stats(models[n]))
                for n, k in zip(order, keys)}

    def apply_scale(name: str, entry: ScaleEntry, inputs: dict) -> ScaleOutputs:
        model = models[name]
        if name in ensembles:
            outs = jax.vmap(lambda p, s: model.apply(p, s, inputs))(entry.params, entry.stats)
            return jax.tree.map(lambda a: a.mean(axis=0), outs)
        return model.apply(entry.params, entry.stats, inputs)

    def apply(chain_params: ChainParams, inputs: dict) -> dict[str, ScaleOutputs]:
        outs: dict[str, ScaleOutputs] = {}
        for name in order:
            if name not in chain_params:
                continue
            x = dict(inputs.get(name, {}))
            for g in models[name].spec.inputs:
                if g.kind == "latent":
                    x[g.name] = outs[g.scale].latent
            outs[name] = apply_scale(name, ScaleEntry(*chain_params[name]), x)
        return outs

    return Chain(init, apply, dict(models), frozenset(ensembles))


# ----------------------------------------------------------------------------------------------
# Raw columns: where each scale's inputs are found in a downstream scale's data file


def column_maps(specs: dict[str, ScaleSpec], target: str) -> dict[str, dict[str, str]]:
    """For ``target`` and every scale it (transitively) takes latents from: {upstream column
    name: column name in the target's file}. Renames compose along the chain."""
    maps: dict[str, dict[str, str]] = {target: {}}
    stack = [target]
    while stack:
        name = stack.pop()
        outer = maps[name]
        for g in specs[name].inputs:
            if g.kind == "latent" and g.scale not in maps:
                rename = dict(g.rename)
                cols = input_group_columns(specs[g.scale]) + \
                    [c for x in specs[g.scale].inputs if x.kind == "latent"
                     for c in upstream_columns(specs[x.scale], x)]
                maps[g.scale] = {c: outer.get(rename.get(c, c), rename.get(c, c)) for c in cols}
                stack.append(g.scale)
    return maps


def row_columns(specs: dict[str, ScaleSpec], name: str) -> list[str]:
    """The raw columns of scale ``name``'s file that make up one encoder input row: its own
    input columns and those of every scale upstream of it (through the renames)."""
    maps = column_maps(specs, name)
    cols = input_group_columns(specs[name])
    return cols + [c for up, cmap in maps.items() if up != name for c in cmap.values()
                   if c not in cols]


def upstream_columns(upstream: ScaleSpec, group: InputGroup) -> list[str]:
    """The columns of a downstream file that carry ``upstream``'s own inputs for ``group``."""
    rename = dict(group.rename)
    return [rename.get(c, c) for c in input_group_columns(upstream)]


def chain_inputs(specs: dict[str, ScaleSpec], categories: dict[str, Categories],
                 frame: pd.DataFrame, target: str, source: str) -> dict[str, dict]:
    """Raw inputs of ``target`` and all its upstream scales, read from ``target``'s rows."""
    out = {}
    for name, cmap in column_maps(specs, target).items():
        view = frame.rename(columns={v: k for k, v in cmap.items() if v in frame.columns}) \
            if cmap else frame
        if cmap:
            missing = [v for v in cmap.values() if v not in frame.columns]
            if missing:
                from .data import require_columns
                require_columns(frame, missing, f"{source} (inputs of scale '{name}')")
        out[name] = {k: jnp.asarray(v) for k, v in
                     encode_inputs(specs[name], view, categories[name], source).items()}
    return out


def upstream_of(specs: dict[str, ScaleSpec] | Config, target: str) -> list[str]:
    """``target``'s ancestors (the scales its latent inputs come from, transitively), in
    dependency order."""
    specs = specs.specs if isinstance(specs, Config) else specs
    ancestors = _ancestors(specs, target)
    return [name for name in specs if name in ancestors]


def _ancestors(specs: dict[str, ScaleSpec], name: str) -> set[str]:
    out: set[str] = set()
    for up in specs[name].upstream:
        out |= {up} | _ancestors(specs, up)
    return out
