"""Attributions: exact Shapley values of a scale's input descriptors, gradients through a chain.

Shapley players of a scale are its own encoder inputs, as the model sees them in raw units:
one player per column of a numeric group, one per unit of a latent input group (an upstream
scale's latent, e.g. the 12 AE1 latents feeding AE2), and ONE player per categorical group
(the whole category is swapped in or out). The explained outputs are every regression head's
columns (raw units) and every latent unit. Values are interventional Shapley values against a
background set of the scale's rows (see :mod:`nested_ae_jax.shapley`).

Gradient attributions go through the whole chain: d(head output)/d(raw numeric input) of every
scale upstream of (and including) the explained one, e.g. d(PCE)/d(raw atomic descriptors)
through AE1's scaler and encoder, the latent re-standardisation and AE2.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..model import ScaleModel
from ..shapley import exact_shapley


@dataclass(frozen=True)
class Player:
    """One Shapley player: column ``column`` of input group ``group`` (None: the whole
    categorical group, as its integer code)."""

    name: str
    group: str
    column: int | None


def scale_players(model: ScaleModel) -> list[Player]:
    """The players of a scale, in encoder input order (see the module docstring)."""
    players = []
    for name, width in model.dims.inputs:
        g = model.spec.group(name)
        if g.kind == "categorical":
            players.append(Player(g.column or name, name, None))
        elif g.kind == "numeric":
            players += [Player(c, name, j) for j, c in enumerate(g.columns)]
        else:
            players += [Player(f"{g.scale}.latent_{j}", name, j) for j in range(width)]
    names = [p.name for p in players]
    if len(set(names)) != len(names):  # disambiguate with the group name
        players = [Player(f"{p.group}:{p.name}", p.group, p.column) for p in players]
    return players


def players_matrix(players: list[Player], inputs: dict) -> np.ndarray:
    """(N, P) float32: each player's raw value per row (categorical: the integer code)."""
    cols = []
    for p in players:
        x = np.asarray(inputs[p.group])
        cols.append(x if p.column is None else x[:, p.column])
    return np.stack(cols, axis=1).astype(np.float32)


def inputs_from_matrix(players: list[Player], z: jax.Array) -> dict:
    """Inverse of :func:`players_matrix` inside a traced function: {GROUP: raw array}."""
    cols: dict[str, list] = {}
    out = {}
    for i, p in enumerate(players):
        if p.column is None:
            out[p.group] = jnp.round(z[:, i]).astype(jnp.int32)
        else:
            cols.setdefault(p.group, []).append((p.column, z[:, i]))
    for group, items in cols.items():
        out[group] = jnp.stack([c for _, c in sorted(items, key=lambda t: t[0])], axis=1)
    return out


def output_names(model: ScaleModel) -> list[str]:
    """Explained outputs: regression head columns (``HEAD`` or ``HEAD[target]``) then
    ``latent_j``."""
    names = []
    for h in model.spec.heads:
        if h.kind == "regression":
            names += [h.name] if len(h.target) == 1 else [f"{h.name}[{t}]" for t in h.target]
    return names + [f"latent_{j}" for j in range(model.spec.encoder.latent_size)]


def scale_output_fn(model: ScaleModel, params, stats, players: list[Player]):
    """f(Z) (r, P) -> (r, k): the explained outputs (:func:`output_names`) of one model
    (params/stats without a model axis), dropout off."""
    heads = [h.name for h in model.spec.heads if h.kind == "regression"]

    def f(z):
        out = model.apply(params, stats, inputs_from_matrix(players, z))
        return jnp.concatenate([out.heads[h] for h in heads] + [out.latent], axis=-1)

    return f


def scale_shapley(model: ScaleModel, params, stats, inputs: dict, rows: np.ndarray,
                  background: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact Shapley values of a scale's players for its regression heads and latents.

    inputs: the scale's raw inputs for all rows ({GROUP: array}, latent groups filled);
    rows / background: row indices to explain / to use as the background set.
    Returns (values, importance): values has one row per (explained row, output) with
    columns row, output, base (= mean over the background of the output), f_x and one column
    per player (they sum to f_x - base); importance is mean |value| over the explained rows
    (index: outputs, columns: players).
    """
    players = scale_players(model)
    z = players_matrix(players, inputs)
    f = scale_output_fn(model, params, stats, players)
    phi, base, fx = exact_shapley(f, z[rows], z[background])
    names = output_names(model)
    n, d, k = phi.shape
    table = pd.DataFrame({"row": np.repeat(rows, k), "output": np.tile(names, n),
                          "base": np.tile(base, n), "f_x": fx.reshape(-1)})
    values = pd.DataFrame(phi.transpose(0, 2, 1).reshape(n * k, d),
                          columns=[p.name for p in players])
    table = pd.concat([table, values], axis=1)
    importance = pd.DataFrame(np.abs(phi).mean(axis=0).T, index=names,
                              columns=[p.name for p in players])
    return table, importance


def chain_gradients(chain_apply, chain_params: dict, raw: dict, scale: str, head: str,
                    column: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """Per-row gradient of ``scale``'s head output ``column`` with respect to every numeric
    raw input group of the chain: {(SCALE, GROUP): (N, d)}.

    ``raw``: {SCALE: {GROUP: raw array}} for the same rows (as ``nesting.chain_inputs``
    builds it). Rows are independent (no dropout, no batch statistics), so the gradient of the
    sum over rows is every row's own gradient.
    """
    numeric = {(s, g): jnp.asarray(x) for s, groups in raw.items() for g, x in groups.items()
               if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)}

    def total(num):
        inputs = {s: dict(groups) for s, groups in raw.items()}
        for (s, g), x in num.items():
            inputs[s][g] = x
        return chain_apply(chain_params, inputs)[scale].heads[head][:, column].sum()

    grads = jax.jit(jax.grad(total))(numeric)
    return {k: np.asarray(v) for k, v in grads.items()}


def gradient_summary(grads: np.ndarray, raw: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Per input column: mean gradient, mean |gradient|, the input's std over the rows, and
    both gradients times that std (the output change for +1 std of the input: comparable
    across inputs of different units)."""
    g = np.asarray(grads, np.float64)
    std = np.asarray(raw, np.float64).std(axis=0)
    return pd.DataFrame({"input": names, "mean_grad": g.mean(axis=0),
                         "mean_abs_grad": np.abs(g).mean(axis=0), "input_std": std,
                         "mean_grad_x_std": g.mean(axis=0) * std,
                         "mean_abs_grad_x_std": np.abs(g).mean(axis=0) * std})
