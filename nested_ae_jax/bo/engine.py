"""The compiled campaign engine: one round of one trial (choose ``q`` picks, reveal them) and
one phase (all trials, rounds under ``lax.while_loop`` until the buffer is full, a refit is due
or every trial is done), with the GP hyper-parameter refit as its own compiled program.

All trials of one method run together: ``jax.vmap`` over trials, ``lax.while_loop`` over rounds.
The GP sees only the revealed rows, gathered in reveal order into a buffer of fixed size B with
a row mask (``gp`` module). What runs between phases (buffer sizes, dropping finished trials,
the refit schedule, relearned features) is the host-side scheduler, ``campaign``.

Leakage: a trial's strategy receives targets only through ``jnp.where(revealed, y, 0)`` (and
the GP and a ``BufferSurrogate`` only through the masked buffer); the pool's best is known to
the engine only to stop the trial and score it. ``tests/test_bo_campaign.py`` replaces every
target a trial never revealed by garbage and checks the picks do not change.

Shapes: T trials, P candidates, d features, q picks per round, B buffer rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import acquisition as acq
from . import gp as gplib
from .methods import Method, Objective, score, utility_normal

Array = jax.Array

#: ``surrogate(revealed (P,) bool, y_seen (P,)) -> (mean (P,), std (P,))``: a pure JAX function
#: predicting the targets (original units) of every candidate from the revealed ones only
#: (``y_seen`` is 0 where not revealed). Called once per round per trial, under ``vmap``.
Surrogate = Callable[[Array, Array], tuple[Array, Array]]


@dataclasses.dataclass(frozen=True, eq=False)
class BufferSurrogate:
    """A surrogate that reads the revealed rows as the GP does, from a buffer of fixed size:
    ``fn(index (B,), y (B,), mask (B,)) -> (mean (P,), std (P,))``, where ``index`` lists the
    revealed candidates in reveal order, ``y`` their targets (original units) and ``mask`` is
    False after the last revealed row (``index`` and ``y`` are 0 there). B is the phase's
    buffer size (``buffer_sizes``: 32, 64, ...), so a surrogate that trains on the revealed
    rows costs ~B per round instead of ~P, and finished trials are dropped between phases.
    Called once per round per trial, under ``vmap``; hashed by identity (a static argument)."""

    fn: Callable[[Array, Array, Array], tuple[Array, Array]]

    def __call__(self, index: Array, y: Array, mask: Array) -> tuple[Array, Array]:
        return self.fn(index, y, mask)


# ---------------------------------------------------------------------------------------------
# state


class TrialState(NamedTuple):
    """One trial (a leading T axis when batched).

    key: PRNG key; revealed (P,) bool; order (P + q,) int32: candidates in reveal order, -1
    after ``count``; count () revealed so far; active () best not yet revealed; found_count ()
    revealed when the best was found (0 if not yet); found_round () rounds it took (init picks
    are round 0); params: the GP's current hyper-parameters; prior_chol (P, P): Cholesky
    factor of the GP prior over the pool for Thompson sampling ((0, 0) otherwise), refreshed
    with the hyper-parameters; xs (P, d): the trial's own standardised features, when a
    ``Relearner`` retrains its feature map (None: the pool's, shared by every trial).
    """

    key: Array
    revealed: Array
    order: Array
    count: Array
    active: Array
    found_count: Array
    found_round: Array
    params: gplib.GPParams
    prior_chol: Array
    xs: Array | None = None


class Shared(NamedTuple):
    """Counters common to all running trials: round () done, n () revealed per running trial
    (init + round * q)."""

    round: Array
    n: Array


class _Pool(NamedTuple):
    """Arrays a compiled phase reads: y (P,) targets, u (P,) utility, best (P,) bool,
    xs (P, d) standardised features (or (P, 0)), mean/std (P,) fixed ensemble predictions."""

    y: Array
    u: Array
    best: Array
    xs: Array
    mean: Array
    std: Array


@functools.partial(jax.jit, static_argnames=("init", "q", "trials", "d", "thompson"))
def init_trials(key: Array, best: Array, *, init: int, q: int, trials: int, d: int,
                thompson: bool = False) -> TrialState:
    """T trials, each with ``init`` distinct random initial picks (those that hit the pool's
    ``best`` (P,) bool are already done); trial t's key is ``fold_in(key, t)`` (independent of
    T)."""
    pool = best.shape[0]

    def one(k):
        k_init, k_run = jax.random.split(k)
        picks = jax.random.permutation(k_init, pool)[:init].astype(jnp.int32)
        order = jnp.full(pool + q, -1, jnp.int32).at[:init].set(picks)
        revealed = jnp.zeros(pool, bool).at[picks].set(True)
        chol = jnp.zeros((pool, pool) if thompson else (0, 0), jnp.float32)
        hit = jnp.any(revealed & best)
        return TrialState(k_run, revealed, order, jnp.int32(init), ~hit,
                          jnp.where(hit, jnp.int32(init), 0), jnp.int32(0),
                          gplib.default_params(max(d, 1)), chol)

    return jax.vmap(lambda t: one(jax.random.fold_in(key, t)))(jnp.arange(trials))


# ---------------------------------------------------------------------------------------------
# one round of one trial


def _features(state: TrialState, pool: _Pool) -> Array:
    """(P, d) standardised features of a trial: its own (relearned) or the pool's."""
    return pool.xs if state.xs is None else state.xs


def _buffer(state: TrialState, pool: _Pool, size: int):
    """Indices (B,), features (B, d), utilities (B,) and mask (B,) of the revealed rows."""
    idx = jnp.maximum(state.order[:size], 0)
    mask = jnp.arange(size) < state.count
    return idx, _features(state, pool)[idx], jnp.where(mask, pool.u[idx], 0.0), mask


def _identity(d: int, dtype) -> gplib.Standardizer:
    """The pool's features are standardised once, so the GP gets an identity scaler."""
    return gplib.Standardizer(jnp.zeros(d, dtype), jnp.ones(d, dtype))


def _fit_buffer(state: TrialState, pool: _Pool, size: int, key: Array):
    """Features (F, d), utilities (F,) and mask (F,) of all revealed rows, or of a random
    subset of F = ``size`` of them when more are revealed."""
    slots = state.order.shape[0]
    score = jnp.where(jnp.arange(slots) < state.count, jax.random.uniform(key, (slots,)), -1.0)
    score, pos = jax.lax.top_k(score, size)
    idx = jnp.maximum(state.order[pos], 0)
    mask = score >= 0
    return _features(state, pool)[idx], jnp.where(mask, pool.u[idx], 0.0), mask


def _refit(state: TrialState, pool: _Pool, method: Method, size: int, restarts: int,
           steps: Array) -> TrialState:
    """New hyper-parameters from (at most ``size`` of) the revealed rows, warm-started from the
    current ones (and, for Thompson sampling, the pool's prior Cholesky factor under them)."""
    key, k_fit, k_sub = jax.random.split(state.key, 3)
    xb, yb, mask = _fit_buffer(state, pool, size, k_sub)
    params = gplib.fit_hyperparameters(
        xb, yb, mask, k_fit, restarts=restarts, steps=steps, config=method.fit,
        init=state.params, x_scaler=_identity(xb.shape[1], xb.dtype))
    chol = state.prior_chol
    if method.acquisition == "ts":
        chol = gplib.prior_cholesky(params, _features(state, pool))
    return state._replace(key=key, params=params, prior_chol=chol)


@functools.partial(jax.jit, static_argnames=("method", "size", "restarts"))
def refit(states: TrialState, pool: _Pool, steps: Array, *, method: Method, size: int,
          restarts: int) -> TrialState:
    """Every trial's GP hyper-parameters refit (``method.fit``'s settings, ``restarts``
    starts, ``steps`` Adam steps) on (a random subset of at most ``size`` of) its revealed
    rows, starting from its current ones."""
    return jax.vmap(lambda s: _refit(s, pool, method, size, restarts, steps))(states)


def _choose(state: TrialState, pool: _Pool, method: Method, objective: Objective,
            surrogate: Surrogate | None, size: int, q: int) -> tuple[Array, Array]:
    """This round's picks (q,) and their validity (q,) for one trial."""
    key = jax.random.fold_in(state.key, state.count)
    available = ~state.revealed
    best_u = jnp.max(jnp.where(state.revealed, pool.u, -jnp.inf))
    if method.kind == "random":
        return acq.select_top(jax.random.uniform(key, available.shape), available, q)
    if method.kind == "ensemble":
        if surrogate is None:
            mean, std = pool.mean, pool.std
        elif isinstance(surrogate, BufferSurrogate):
            idx = jnp.maximum(state.order[:size], 0)
            mask = jnp.arange(idx.shape[0]) < state.count
            mean, std = surrogate(jnp.where(mask, idx, 0), jnp.where(mask, pool.y[idx], 0.0),
                                  mask)
        else:
            mean, std = surrogate(state.revealed, jnp.where(state.revealed, pool.y, 0.0))
        mean_u, std_u = utility_normal(objective, mean, std)
        return acq.select_top(score(method)(mean_u, std_u, best_u), available, q)

    idx, xb, yb, mask = _buffer(state, pool, size)
    xs = _features(state, pool)
    scaler = _identity(xb.shape[1], xb.dtype)
    if method.acquisition == "ts":
        draws = gplib.posterior_sample(state.params, xb, yb, mask, xs, key, num=q,
                                       x_scaler=scaler, train_index=idx,
                                       prior_chol=state.prior_chol)
        return acq.thompson(draws, available)

    def predict(picks, values, j):
        idx2 = jax.lax.dynamic_update_slice(idx, picks, (state.count,))
        y2 = jax.lax.dynamic_update_slice(yb, values.astype(yb.dtype), (state.count,))
        mask2 = jnp.arange(size) < state.count + j
        mean, var = gplib.posterior(state.params, xs[idx2], y2, mask2, xs, scaler)
        return mean, jnp.sqrt(var)

    return acq.kriging_believer(predict, score(method), available, best_u, q)


def _reveal(state: TrialState, picks: Array, valid: Array, pool: _Pool, rnd: Array
            ) -> TrialState:
    """Reveal the valid picks of a running trial; record the best's discovery."""
    valid = valid & state.active
    n_new = jnp.sum(valid, dtype=jnp.int32)
    # valid picks first, in pick order (they are, unless the pool ran out mid-batch)
    slot = jnp.where(valid, picks, -1)
    order = jax.lax.dynamic_update_slice(state.order, slot, (state.count,))
    order = jnp.where(state.active, order, state.order)
    revealed = state.revealed.at[picks].max(valid)
    count = state.count + n_new
    hit = jnp.any(valid & pool.best[picks])
    return state._replace(
        revealed=revealed, order=order, count=count, active=state.active & ~hit,
        found_count=jnp.where(hit, count, state.found_count),
        found_round=jnp.where(hit, rnd + 1, state.found_round))


# ---------------------------------------------------------------------------------------------
# one phase: all trials, rounds until the buffer is full or every trial is done


@functools.partial(jax.jit, static_argnames=("method", "objective", "surrogate", "size", "q"))
def run_phase(states: TrialState, shared: Shared, pool: _Pool, max_rounds: Array,
              stop_n: Array, *, method: Method, objective: Objective,
              surrogate: Surrogate | None, size: int, q: int) -> tuple[TrialState, Shared]:
    """Rounds for all trials (batched states) while some trial runs, the buffer of ``size``
    rows can take another batch (n + q <= size), fewer than ``max_rounds`` rounds ran and
    fewer than ``stop_n`` rows are revealed (the next hyper-parameter refit)."""

    def cond(carry):
        states, shared = carry
        return (jnp.any(states.active) & (shared.n + q <= size)
                & (shared.round < max_rounds) & (shared.n < stop_n))

    def body(carry):
        states, shared = carry
        picks, valid = jax.vmap(
            lambda s: _choose(s, pool, method, objective, surrogate, size, q))(states)
        states = jax.vmap(lambda s, p, v: _reveal(s, p, v, pool, shared.round))(
            states, picks, valid)
        return states, shared._replace(round=shared.round + 1, n=shared.n + q)

    return jax.lax.while_loop(cond, body, (states, shared))
