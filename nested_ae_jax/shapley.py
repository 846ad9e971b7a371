"""Exact Shapley values by vectorised enumeration of every coalition (JAX).

Formulation (interventional, also called baseline or "marginal" Shapley, as in SHAP's exact
and kernel explainers with a background set). For a model f: R^d -> R^k, a row x and a
background set B = {b_1..b_m}, the value of a coalition S of the d players (input columns) is

    v_x(S) = mean_b f(x_S, b_{not S})

(the players in S take x's values, the others the background row's, independently of x: no
conditional distribution is modelled). The Shapley value of player i is

    phi_i(x) = sum_{S not containing i} |S|! (d - |S| - 1)! / d! * (v_x(S + i) - v_x(S))

and is exact here: all 2^d coalitions are enumerated. Because phi is linear in v, it is
computed as ``phi = C^T v`` with a fixed (2^d, d) coefficient matrix ``C`` (C[S, i] =
w(|S| - 1) if i in S else -w(|S|), w(s) = s! (d - s - 1)! / d!), accumulated over chunks of
coalitions inside one compiled ``lax.scan``. Efficiency holds by construction:
sum_i phi_i(x) = f(x) - mean_b f(b).

Cost: n_rows * 2^d * m evaluations of f; d <= 16 is comfortable on a CPU for small models and
tens of rows and background rows. A player may stand for a whole categorical input: the caller
encodes the category as one column (its integer code) and decodes it inside ``f``.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

MAX_PLAYERS = 20
"""Hard limit on the number of players (2^20 coalitions); beyond it use sampling methods."""

ROW_BUDGET = 1 << 18
"""Model evaluations per compiled step (rows x coalitions x background rows)."""


def coalition_masks(d: int) -> np.ndarray:
    """(2^d, d) bool: row s is the coalition whose members are the set bits of s."""
    s = np.arange(1 << d, dtype=np.int64)[:, None]
    return ((s >> np.arange(d)) & 1).astype(bool)


def shapley_weights(d: int) -> np.ndarray:
    """w(s) = s! (d - s - 1)! / d! for coalition sizes s = 0..d-1 (float64)."""
    return np.array([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
                     for s in range(d)])


def shapley_coefficients(d: int) -> np.ndarray:
    """(2^d, d) float64 C with phi = C^T v for the coalition values v (2^d,)."""
    masks = coalition_masks(d)
    size = masks.sum(axis=1)
    w = shapley_weights(d)
    plus = w[np.clip(size - 1, 0, d - 1)]  # S contains i: v(S) enters with +w(|S| - 1)
    minus = -w[np.clip(size, 0, d - 1)]  # S lacks i: v(S) enters with -w(|S|)
    return np.where(masks, plus[:, None], minus[:, None])


def _chunking(n: int, m: int, n_coalitions: int, budget: int) -> tuple[int, int]:
    """(row block, coalition chunk) such that block * chunk * m <= budget (at least 1 each)."""
    chunk = 1
    while chunk * 2 <= n_coalitions and chunk * 2 * m <= budget:
        chunk *= 2
    block = max(1, min(n, budget // (chunk * m)))
    return block, chunk


def exact_shapley(f: Callable[[jax.Array], jax.Array], x: np.ndarray, background: np.ndarray,
                  *, budget: int = ROW_BUDGET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact interventional Shapley values of every player for every output.

    f: (r, d) -> (r, k) (traceable by JAX; each row evaluated independently).
    x: (n, d) rows to explain; background: (m, d) the reference distribution.
    Returns phi (n, d, k), base (k,) = mean_b f(b), and fx (n, k) = f(x); for every row
    phi.sum(axis=1) == fx - base (efficiency) up to float32 rounding.
    """
    x = np.asarray(x, np.float32)
    bg = np.asarray(background, np.float32)
    if x.ndim != 2 or bg.ndim != 2 or x.shape[1] != bg.shape[1]:
        raise ValueError(f"x (n, d) and background (m, d) must share d; got {x.shape}, "
                         f"{bg.shape}")
    n, d = x.shape
    m = bg.shape[0]
    if d > MAX_PLAYERS:
        raise ValueError(f"{d} players: exact enumeration of 2^{d} coalitions is too costly "
                         f"(limit {MAX_PLAYERS})")
    if n == 0 or m == 0:
        raise ValueError("need at least one row to explain and one background row")
    n_coal = 1 << d
    block, chunk = _chunking(n, m, n_coal, budget)
    n_chunks = -(-n_coal // chunk)
    pad = n_chunks * chunk - n_coal
    masks = np.concatenate([coalition_masks(d), np.zeros((pad, d), bool)])
    coefs = np.concatenate([shapley_coefficients(d), np.zeros((pad, d))]).astype(np.float32)
    masks = jnp.asarray(masks.reshape(n_chunks, chunk, d))
    coefs = jnp.asarray(coefs.reshape(n_chunks, chunk, d))
    bg_j = jnp.asarray(bg)

    @jax.jit
    def rows_phi(xb: jax.Array) -> jax.Array:
        def step(acc, mc):
            mask, coef = mc
            # (rows, coalitions, background, d) composite inputs
            comp = jnp.where(mask[None, :, None, :], xb[:, None, None, :], bg_j[None, None])
            out = f(comp.reshape(-1, d))
            v = out.reshape(xb.shape[0], chunk, m, -1).mean(axis=2)  # (rows, chunk, k)
            return acc + jnp.einsum("rck,ci->rik", v, coef), None

        k = jax.eval_shape(f, jax.ShapeDtypeStruct((1, d), jnp.float32)).shape[-1]
        acc0 = jnp.zeros((xb.shape[0], d, k), jnp.float32)
        return jax.lax.scan(step, acc0, (masks, coefs))[0]

    phis = []
    for start in range(0, n, block):
        xb = x[start:start + block]
        short = block - xb.shape[0]
        if short:  # pad the last block to the compiled shape
            xb = np.concatenate([xb, np.repeat(xb[-1:], short, axis=0)])
        phis.append(np.asarray(rows_phi(jnp.asarray(xb)))[:block - short])
    phi = np.concatenate(phis)
    f_jit = jax.jit(f)
    base = np.asarray(f_jit(bg_j)).mean(axis=0)
    fx = np.asarray(f_jit(jnp.asarray(x)))
    return phi, base, fx
