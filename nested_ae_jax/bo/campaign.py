"""Simulated pool-based campaigns: how much of a candidate pool a strategy must measure before it
finds the pool's best candidate.

A campaign knows every candidate's target but reveals a target only once the strategy has
chosen that candidate. Each trial starts from ``init`` random picks (seeded), then every round
chooses ``q`` unrevealed candidates and reveals them, until the pool's best (any of them, if
tied) is revealed. Score: the share of the pool revealed at that moment (the metric of the
NestedAE authors' later work; random picking needs ~50 % on average).

All trials of one method run together: ``jax.vmap`` over trials, ``lax.while_loop`` over rounds
(a scan that stops as soon as every trial is done). The GP sees only the revealed rows,
gathered in reveal order into a buffer of fixed size B with a row mask (``gp`` module); B grows
in phases (32, 64, 128, ... up to P + q), one compiled program each, with the trials still
running carried from one phase to the next (finished trials are dropped, so late phases, where
a Cholesky costs B^3, run few trials). The number of revealed rows is the same in every running
trial (init + round * q), so phase boundaries and the hyper-parameter refit schedule are shared:
a phase's loop stops when a refit is due, one compiled ``refit`` program refits every trial's
GP (warm start, a few Adam steps, on at most ``Method.fit_size`` revealed rows), and the loop
resumes. Costs and timings: ``benchmarks/campaign_speed.py``.

Leakage: a trial's strategy receives targets only through ``jnp.where(revealed, y, 0)`` (and
the GP and a ``BufferSurrogate`` only through the masked buffer); the pool's best is known to
the engine only to stop the trial and score it. ``tests/test_bo_campaign.py`` replaces every target a trial never revealed
by garbage and checks the picks do not change.

Shapes: T trials, P candidates, d features, q picks per round, B buffer rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, DataError
from . import acquisition as acq
from . import gp as gplib

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
# objective and methods


class Objective(NamedTuple):
    """What "best" means: ``sense`` "max", "min" or "target" (closest to ``target``)."""

    sense: str = "max"
    target: float = 0.0


def parse_objective(text: str) -> Objective:
    """'max', 'min' or 'target=VALUE' -> Objective."""
    text = text.strip()
    if text in ("max", "min"):
        return Objective(text)
    if text.startswith("target="):
        try:
            return Objective("target", float(text.split("=", 1)[1]))
        except ValueError:
            pass
    raise ConfigError(f"objective '{text}': use 'max', 'min' or 'target=VALUE'")


def utility(objective: Objective, y: Array) -> Array:
    """(P,) targets -> (P,) utility to maximise: y, -y, or -|y - target|."""
    if objective.sense == "max":
        return y
    if objective.sense == "min":
        return -y
    if objective.sense == "target":
        return -jnp.abs(y - objective.target)
    raise ConfigError(f"objective sense '{objective.sense}': use 'max', 'min' or 'target'")


def utility_normal(objective: Objective, mean: Array, std: Array) -> tuple[Array, Array]:
    """Normal approximation of the utility of a N(mean, std^2) target: (mean, std) of u.
    For "target" the mean is -|mean - target| (a plug-in; the std is kept)."""
    return utility(objective, mean), std


class Method(NamedTuple):
    """A campaign strategy (hashable: it is a static argument of the compiled programs).

    kind: "gp" (GP on the features), "ensemble" (a given or per-round surrogate mean/std, no
    GP), "random". acquisition: "ei" (expected improvement, ranked by its log), "ucb"
    (mean + sqrt(beta) std), "ts" (Thompson sampling, gp only). Batches of q > 1: kriging
    believer for ei/ucb with a GP, q joint posterior draws for ts, the top q of the acquisition
    for an ensemble (its surrogate does not learn from fantasies). Thompson sampling draws
    jointly over the whole pool: a P x P prior Cholesky factor per trial (O(P^3) at each refit,
    O(P^2 q) per round, T P^2 floats of memory), so it suits pools of up to ~1000 candidates. fit: the GP hyper-parameter
    fit on the initial picks (from ``gp.default_params``; restarts vmapped; Adam steps, bounds,
    prior); later fits (same settings, one start) warm-start from the previous one with
    ``refit_steps`` steps, whenever the number of revealed rows has grown by ``refit_growth``
    since the last fit (1.0: every round), on at most ``fit_size`` revealed rows (a random
    subset beyond that: hyper-parameters need fewer points than the posterior).
    """

    kind: str = "gp"
    acquisition: str = "ei"
    beta: float = 2.0
    xi: float = 0.0
    fit: gplib.FitConfig = gplib.FitConfig(restarts=1, steps=100)
    refit_steps: int = 30
    refit_growth: float = 1.2
    fit_size: int = 64


def gp_method(acquisition: str = "ei", **kw) -> Method:
    """A GP method (see ``Method``)."""
    return Method("gp", acquisition, **kw)


def ensemble_method(acquisition: str = "ucb", **kw) -> Method:
    """An ensemble (surrogate mean/std) method; acquisition "ucb" or "ei"."""
    return Method("ensemble", acquisition, **kw)


def random_method() -> Method:
    """Uniformly random picks."""
    return Method("random", "random")


def _check_method(method: Method) -> None:
    kinds = {"gp": ("ei", "ucb", "ts"), "ensemble": ("ei", "ucb"), "random": ("random",)}
    if method.kind not in kinds:
        raise ConfigError(f"method kind '{method.kind}': use one of {sorted(kinds)}")
    if method.acquisition not in kinds[method.kind]:
        raise ConfigError(f"acquisition '{method.acquisition}' with method '{method.kind}': "
                          f"use one of {list(kinds[method.kind])}")
    if method.refit_growth < 1.0:
        raise ConfigError(f"refit_growth {method.refit_growth}: must be >= 1")


def _score(method: Method) -> Callable[[Array, Array, Array], Array]:
    """acquisition(mean, std, best) -> scores for ei / ucb."""
    return acq.score_fn(method.acquisition, method.beta, method.xi)


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


class CampaignResult(NamedTuple):
    """Per trial (T,): found (bool), rounds (after the initial picks; 0 if an initial pick was
    the best), revealed (candidates revealed when the best was found, initial picks included),
    share (revealed / pool_size; NaN if not found); order (T, P) reveal order (-1 after the
    last revealed); pool_size P."""

    found: np.ndarray
    rounds: np.ndarray
    revealed: np.ndarray
    share: np.ndarray
    order: np.ndarray
    pool_size: int


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
        return acq.select_top(_score(method)(mean_u, std_u, best_u), available, q)

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

    return acq.kriging_believer(predict, _score(method), available, best_u, q)


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


def buffer_sizes(pool: int, init: int, q: int, first: int = 32) -> list[int]:
    """Phase buffer sizes: powers of two from the first that holds init + q rows, doubling,
    the last one P + q (room for a batch when the pool is almost exhausted)."""
    size = first
    while size < init + q:
        size *= 2
    sizes = []
    while size < pool + q:
        sizes.append(size)
        size *= 2
    return sizes + [pool + q]


@contextlib.contextmanager
def single_threaded_blas():
    """Limit OpenBLAS (used by jaxlib's CPU Cholesky / triangular solves) to one thread while
    campaigns run: on a busy 2-core machine its threads spin and were 10-20x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


_TS_MEMORY = 2 * 2**30  # bytes of prior Cholesky factors Thompson sampling may hold


def _bucket(n: int, total: int) -> int:
    """Trials to compile a phase for: n rounded up to a power of two (at most total)."""
    return min(total, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


# ---------------------------------------------------------------------------------------------
# relearned features


class Relearn(NamedTuple):
    """A feature map retrained during a campaign: every ``every`` rounds the engine calls
    ``fn(revealed (n, P) bool, y_seen (n, P), trials (n,) int) -> (n, P, d)`` with the running
    trials' revealed masks, their targets (0 where not revealed) and the trials' numbers
    (stable across phases: a map may keep per-trial state, e.g. warm-started weights), and
    gives each trial the returned features (standardised over the pool)."""

    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    every: int = 10


def _relearned(states: TrialState, relearn: Relearn, y: np.ndarray, trials: np.ndarray
               ) -> TrialState:
    """The trials with the features ``relearn`` gives them from their revealed rows."""
    revealed = np.asarray(states.revealed)
    x = np.asarray(relearn.fn(revealed, np.where(revealed, y[None], 0.0), trials), np.float32)
    want = (*revealed.shape, states.xs.shape[-1])
    if x.shape != want or not np.all(np.isfinite(x)):
        raise DataError(f"relearned features: expected finite {want}, got {x.shape}")
    sd = x.std(1, keepdims=True)
    x = (x - x.mean(1, keepdims=True)) / np.where(sd > 1e-6, sd, 1.0)
    return states._replace(xs=jnp.asarray(x))


# ---------------------------------------------------------------------------------------------
# the campaign


def run_campaign(
    method: Method,
    targets,
    *,
    features=None,
    surrogate: Surrogate | tuple | None = None,
    objective: Objective = Objective(),
    trials: int = 200,
    init: int = 5,
    batch: int = 1,
    seed: int = 0,
    max_rounds: int | None = None,
    buffers: Sequence[int] | None = None,
    on_phase: Callable[[int, int, int], None] | None = None,
    relearn: Relearn | None = None,
) -> CampaignResult:
    """Simulated campaigns of one method on a pool whose targets are known.

    targets (P,) finite; features (P, d) for "gp" (standardised here with the pool's
    statistics); surrogate for "ensemble": fixed ``(mean (P,), std (P,))`` of the targets, a
    ``Surrogate`` function or a ``BufferSurrogate`` called every round. trials campaigns,
    each from ``init`` random picks (trial t's randomness depends only on ``seed`` and t),
    ``batch`` picks per round, until the best is revealed or ``max_rounds`` rounds ran.
    ``buffers``: the buffer phases of a GP or a ``BufferSurrogate`` (default
    ``buffer_sizes``; other methods: one phase). ``on_phase(size, running_trials, round)`` is called
    before each phase (progress). ``relearn`` ("gp" only): every ``relearn.every`` rounds
    each trial's features are replaced by ``relearn``'s, from its revealed rows only (see
    :class:`Relearn`), and its GP refit on them. Returns a ``CampaignResult``.
    """
    _check_method(method)
    y = np.asarray(targets, np.float32)
    if y.ndim != 1 or y.size < 2:
        raise DataError(f"targets: need a 1-D array of at least 2 candidates, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"targets: {int(np.sum(~np.isfinite(y)))} missing or infinite values; "
                        "drop or fill those candidates first")
    pool_size = y.size
    q, init, trials = int(batch), int(init), int(trials)
    if q < 1 or init < 1 or init >= pool_size or trials < 1:
        raise ConfigError(f"campaign: need batch >= 1, 1 <= init < pool size ({pool_size}) and "
                          f"trials >= 1 (got batch={batch}, init={init}, trials={trials})")
    if method.acquisition == "ts" and trials * pool_size**2 * 4 > _TS_MEMORY:
        raise ConfigError(
            f"Thompson sampling keeps a {pool_size} x {pool_size} prior factor per trial: "
            f"{trials} trials need {trials * pool_size**2 * 4 / 2**30:.1f} GiB; use fewer "
            f"trials or acquisition 'ei' / 'ucb'")
    xs = np.zeros((pool_size, 0), np.float32)
    if method.kind == "gp":
        if features is None:
            raise ConfigError("a 'gp' method needs features (P, d)")
        x = np.asarray(features, np.float32)
        if x.ndim != 2 or x.shape[0] != pool_size:
            raise DataError(f"features: expected shape ({pool_size}, d), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise DataError("features: missing or infinite values")
        xs = np.asarray(gplib.standardize(gplib.fit_standardizer(x), x))
    mean = std = np.zeros(pool_size, np.float32)
    fn = None
    if method.kind == "ensemble":
        if surrogate is None:
            raise ConfigError("an 'ensemble' method needs a surrogate: (mean, std) or a function")
        if callable(surrogate):
            fn = surrogate
        else:
            mean, std = (np.asarray(a, np.float32) for a in surrogate)
            if mean.shape != (pool_size,) or std.shape != (pool_size,):
                raise DataError(f"surrogate mean/std: expected shape ({pool_size},), got "
                                f"{mean.shape} and {std.shape}")

    u = np.asarray(utility(objective, y))
    best = u == u.max()
    pool = _Pool(jnp.asarray(y), jnp.asarray(u), jnp.asarray(best), jnp.asarray(xs),
                 jnp.asarray(mean), jnp.asarray(std))

    states = init_trials(jax.random.PRNGKey(seed), pool.best, init=init, q=q, trials=trials,
                         d=xs.shape[1], thompson=method.acquisition == "ts")
    if relearn is not None:
        if method.kind != "gp" or relearn.every < 1:
            raise ConfigError("relearning features needs a 'gp' method and every >= 1 round")
        states = states._replace(xs=jnp.broadcast_to(pool.xs, (trials, *xs.shape)))
    next_learn = init + relearn.every * q if relearn is not None else pool_size + q
    phased = method.kind == "gp" or isinstance(fn, BufferSurrogate)
    sizes = list(buffers) if buffers is not None else (
        buffer_sizes(pool_size, init, q) if phased else [pool_size + q])
    if sizes[-1] < pool_size + q and max_rounds is None:
        sizes.append(pool_size + q)
    limit = max_rounds if max_rounds is not None else pool_size
    n, rnd, fit_n = init, 0, init

    def next_fit(fit_n):
        return max(math.ceil(fit_n * method.refit_growth - 1e-9), fit_n + 1)

    with single_threaded_blas():
        if method.kind == "gp":
            states = refit(states, pool, jnp.int32(method.fit.steps), method=method,
                           size=min(sizes[0], method.fit_size), restarts=method.fit.restarts)
        # per-trial results, filled in as phases end (numpy, in trial order)
        host = jax.tree.map(np.array, states)
        for size in sizes:
            running = np.flatnonzero(host.active)
            if running.size == 0 or rnd >= limit:
                break
            if n + q > size:
                continue
            if on_phase is not None:
                on_phase(size, int(running.size), rnd)
            n_run = _bucket(running.size, trials)
            rows = np.concatenate([running, np.full(n_run - running.size, running[0])])
            pad = np.arange(n_run) >= running.size
            batch = jax.tree.map(lambda a: jnp.asarray(a[rows]), host)
            batch = batch._replace(active=batch.active & jnp.asarray(~pad))
            while True:
                stop_n = pool_size + q
                learned = n >= next_learn
                if learned:
                    batch = _relearned(batch, relearn, y, rows)
                    next_learn = n + relearn.every * q
                if method.kind == "gp":
                    if learned or n >= next_fit(fit_n):
                        batch = refit(batch, pool, jnp.int32(method.refit_steps),
                                      method=method, size=min(size, method.fit_size),
                                      restarts=1)
                        fit_n = n
                    stop_n = min(next_fit(fit_n), next_learn)
                batch, shared = run_phase(
                    batch, Shared(jnp.int32(rnd), jnp.int32(n)), pool, jnp.int32(limit),
                    jnp.int32(stop_n), method=method, objective=objective, surrogate=fn,
                    size=size, q=q)
                rnd, n = int(shared.round), int(shared.n)
                if not bool(jnp.any(batch.active)) or n + q > size or rnd >= limit:
                    break
            out = jax.tree.map(np.asarray, batch)
            keep = ~pad
            for dst, src in zip(jax.tree.leaves(host), jax.tree.leaves(out), strict=True):
                dst[running] = src[keep]

    found = host.found_count > 0
    revealed = np.where(found, host.found_count, host.count)
    share = np.where(found, host.found_count / pool_size, np.nan)
    return CampaignResult(found, host.found_round.astype(np.int64), revealed.astype(np.int64),
                          share, host.order[:, :pool_size].astype(np.int64), pool_size)


# ---------------------------------------------------------------------------------------------
# a table -> a pool


def merge_pool(frame, inputs: Sequence[str], target: str):
    """Distinct candidates of a table: rows with identical ``inputs`` merged, ``target``
    averaged. Returns a DataFrame with the input columns, the mean target and ``rows`` (how
    many rows were merged), in order of first appearance. Rows with a missing input or target
    are an error (a campaign needs every candidate's target)."""
    import pandas as pd

    inputs = list(inputs)
    missing = [c for c in [*inputs, target] if c not in frame.columns]
    if missing:
        from ..errors import did_you_mean

        raise DataError(f"column '{missing[0]}' not in the table"
                        f"{did_you_mean(missing[0], frame.columns)}")
    sub = frame[[*inputs, target]]
    bad = sub.isna().any(axis=1)
    if bad.any():
        raise DataError(f"{int(bad.sum())} rows have a missing input or '{target}' (first: row "
                        f"{int(np.flatnonzero(bad.to_numpy())[0])}); drop or fill them first")
    grouped = sub.groupby(inputs, sort=False, dropna=False)[target]
    pool = grouped.agg(["mean", "size"]).reset_index()
    return pd.DataFrame({**{c: pool[c] for c in inputs}, target: pool["mean"],
                         "rows": pool["size"]})
