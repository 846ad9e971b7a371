"""The nesting combinator: per-scale models composed into one differentiable chain.

A chain's parameters are one pytree ``{SCALE: {"params": ..., "stats": ...}}``. Its ``apply``
maps raw inputs of every scale, *for the same rows*, to every scale's outputs: a scale's latent
input group receives the upstream scale's latent, computed in the same graph, and standardises
it with statistics stored in the downstream scale's ``stats``. Hence::

    grad = jax.grad(lambda x: chain.apply(cp, {"atomic": {"descriptors": x}, "device": dev})
                    ["device"]["heads"]["pce"].sum())(x_atomic)

is the sensitivity of the device property to the raw atomic descriptors through the atomic
scaler, AE1's encoder, the latent re-standardisation and AE2. An upstream scale may be an
*ensemble* (leading model axis on its params and stats): its outputs are then averaged.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .config import ChainSpec, Config, InputGroup, ScaleSpec
from .data import Categories, encode_inputs, fit_stats, input_group_columns
from .model import ScaleModel

ChainParams = dict[str, dict]


class Chain(NamedTuple):
    """init(key) -> ChainParams (random weights, identity scalers); apply(chain_params,
    inputs) -> {SCALE: outputs}; ``inputs`` = {SCALE: {GROUP: raw array}} for every scale's
    own (non-latent) groups, all for the same N rows."""

    init: Callable[[jax.Array], ChainParams]
    apply: Callable[[ChainParams, dict], dict]
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
        return {n: {"params": models[n].init(k), "stats": identity_stats(models[n])}
                for n, k in zip(order, keys)}

    def apply_scale(name: str, entry: dict, inputs: dict) -> dict:
        model = models[name]
        if name in ensembles:
            outs = jax.vmap(lambda p, s: model.apply(p, s, inputs))(entry["params"],
                                                                   entry["stats"])
            return jax.tree.map(lambda a: a.mean(axis=0), outs)
        return model.apply(entry["params"], entry["stats"], inputs)

    def apply(chain_params: ChainParams, inputs: dict) -> dict:
        outs: dict[str, dict] = {}
        for name in order:
            if name not in chain_params:
                continue
            x = dict(inputs.get(name, {}))
            for g in models[name].spec.inputs:
                if g.kind == "latent":
                    x[g.name] = outs[g.scale]["latent"]
            outs[name] = apply_scale(name, chain_params[name], x)
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


# ----------------------------------------------------------------------------------------------
# Which trained upstream model feeds the next scale


def model_indices(n_cv: int, has_full: bool, members: int = 1,
                  fold: int | str | None = None) -> np.ndarray:
    """Positions on a scale's model axis (members x [CV folds, all-rows model], member-major)
    of: every CV model (fold None), one fold's members (int) or the all-rows models ("full")."""
    per = n_cv + int(has_full)
    folds = np.arange(n_cv) if fold is None else np.array([n_cv if fold == "full" else fold])
    return (np.arange(members)[:, None] * per + folds[None, :]).reshape(-1)


def feeding_index(chain_spec: ChainSpec, n_cv: int, has_full: bool) -> np.ndarray:
    """Positions on a trained scale's model axis of the model(s) that feed downstream scales.

    Of an ensemble only member 0 feeds (member 0's positions are those of a one-member
    layout): the latent axes of differently seeded models do not line up, so their mean would
    blur the latents. fold_mean averages the fold models (all started from the same seed, as
    in the paper).
    """
    if chain_spec.feed == "all_rows":
        return model_indices(n_cv, has_full, 1, "full" if has_full else 0)
    if chain_spec.feed == "fold_mean":
        return model_indices(n_cv, has_full, 1)
    return model_indices(n_cv, has_full, 1, min(chain_spec.feed_fold, n_cv - 1))


def feeding_entry(chain_spec: ChainSpec, params, stats, n_cv: int, has_full: bool
                  ) -> tuple[dict, bool]:
    """The {"params", "stats"} of a trained scale's model batch that feeds downstream scales,
    and whether it is an ensemble (then with a leading model axis)."""
    idx = feeding_index(chain_spec, n_cv, has_full)
    entry = jax.tree.map(lambda a: jnp.asarray(a)[idx], {"params": params, "stats": stats})
    if len(idx) == 1:
        return jax.tree.map(lambda a: a[0], entry), False
    return entry, True


def trained_chain(cfg: Config, scales: dict, upto: list[str]) -> tuple[Chain, ChainParams]:
    """A chain of the trained scales ``upto``, each fed as ``cfg.chain`` says.

    scales: {SCALE: a trained scale} with ``model``, ``params``, ``stats``, ``n_cv`` and
    ``has_full`` (a ScaleResult in memory or a LoadedScale read from a run directory).
    """
    models, params, ensembles = {}, {}, set()
    for name in upto:
        s = scales[name]
        models[name] = s.model
        params[name], is_ens = feeding_entry(cfg.chain, s.params, s.stats, s.n_cv, s.has_full)
        if is_ens:
            ensembles.add(name)
    return nest(models, frozenset(ensembles)), params


def refit_upstream_stats(entry: dict, model: ScaleModel, inputs: dict, ensemble: bool) -> dict:
    """The original program's transfer: upstream scalers re-fitted on the downstream rows."""
    stats = {}
    for g in model.spec.inputs:
        if g.kind == "numeric":
            s = fit_stats(np.asarray(inputs[g.name]), np.ones((1, inputs[g.name].shape[0])),
                          name=g.name, source="downstream rows")
            s = {k: jnp.asarray(v[0]) for k, v in s.items()}
            if ensemble:
                n = jax.tree.leaves(entry["stats"])[0].shape[0]
                s = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), s)
            stats[g.name] = s
        elif g.kind == "latent":
            stats[g.name] = entry["stats"][g.name]
    return {"params": entry["params"], "stats": stats}


def refit_transfer(cfg: Config, chain: Chain, params: ChainParams, inputs: dict,
                   target: str) -> ChainParams:
    """With chain.transfer_scaler = refit (the original program's defect), the scalers of the
    scales feeding ``target`` re-fitted on the rows in ``inputs``; otherwise unchanged."""
    if cfg.chain.transfer_scaler != "refit":
        return params
    params = dict(params)
    for up in cfg.scale(target).upstream:
        params[up] = refit_upstream_stats(params[up], chain.models[up], inputs[up],
                                          up in chain.ensembles)
    return params


def upstream_of(cfg: Config, target: str) -> list[str]:
    """``target``'s ancestors in config order (the scales its latent inputs come from)."""
    ancestors = _ancestors({s.name: s for s in cfg.scales}, target)
    return [s.name for s in cfg.scales if s.name in ancestors]


def transfer_latent(cfg: Config, results: dict, group: InputGroup, data) -> np.ndarray:
    """The upstream latent for every row of a downstream scale (N, L), computed by the trained
    (frozen) upstream chain from the raw upstream columns in the downstream file."""
    specs = {s.name: s for s in cfg.scales}
    upto = [*upstream_of(cfg, group.scale), group.scale]
    chain, cp = trained_chain(cfg, results, upto)
    sub_specs = {n: specs[n] for n in upto}
    # read upstream inputs as they appear in this file: a temporary one-link spec set
    link_specs = dict(sub_specs)
    link_specs["__target__"] = ScaleSpec(name="__target__", data="", inputs=(group,), heads=())
    cats = {n: results[n].data.categories for n in upto}
    inputs = chain_inputs(link_specs, {**cats, "__target__": Categories({}, {})},
                          data.frame, "__target__", data.source)
    inputs.pop("__target__")
    if cfg.chain.transfer_scaler == "refit":  # the defect: re-fit on these downstream rows
        up = group.scale
        cp[up] = refit_upstream_stats(cp[up], chain.models[up], inputs[up], up in chain.ensembles)
    outs = jax.jit(chain.apply)(cp, inputs)
    return np.asarray(outs[group.scale]["latent"], np.float32)


def _ancestors(specs: dict[str, ScaleSpec], name: str) -> set[str]:
    out: set[str] = set()
    for up in specs[name].upstream:
        out |= {up} | _ancestors(specs, up)
    return out
