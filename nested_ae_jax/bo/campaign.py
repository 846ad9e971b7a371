"""Simulated pool-based campaigns: how much of a candidate pool a strategy must measure before it
finds the pool's best candidate -- the host-side scheduler around the compiled engine
(``engine``).

A campaign knows every candidate's target but reveals a target only once the strategy has
chosen that candidate. Each trial starts from ``init`` random picks (seeded), then every round
chooses ``q`` unrevealed candidates and reveals them, until the pool's best (any of them, if
tied) is revealed. Score: the share of the pool revealed at that moment (the metric of the
NestedAE authors' later work; random picking needs ~50 % on average).

The scheduler: the buffer of revealed rows grows in phases (32, 64, 128, ... up to P + q), one
compiled program each, with the trials still running carried from one phase to the next
(finished trials are dropped, so late phases, where a Cholesky costs B^3, run few trials). The
number of revealed rows is the same in every running trial (init + round * q), so phase
boundaries and the hyper-parameter refit schedule are shared: a phase's loop stops when a refit
is due, one compiled ``refit`` program refits every trial's GP (warm start, a few Adam steps, on
at most ``Method.fit_size`` revealed rows), and the loop resumes. Costs and timings:
``benchmarks/campaign_speed.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, DataError
from . import gp as gplib
from .engine import (  # noqa: F401  (TrialState, _Pool, _fit_buffer: tests read them here)
    Array, BufferSurrogate, Shared, Surrogate, TrialState, _fit_buffer, _Pool, init_trials,
    refit, run_phase)
from .methods import (  # noqa: F401  (re-exported: the campaign's public names)
    Method, Objective, check_method, ensemble_method, gp_method, parse_objective,
    random_method, utility, utility_normal)


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


# ---------------------------------------------------------------------------------------------
# the scheduler


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


def _pool(method: Method, targets, features, surrogate, objective: Objective, *, q: int,
          init: int, trials: int) -> tuple[_Pool, Surrogate | None, np.ndarray]:
    """The checked pool a compiled phase reads, the surrogate function (None: fixed
    predictions or none) and the targets (P,) as numpy."""
    y = np.asarray(targets, np.float32)
    if y.ndim != 1 or y.size < 2:
        raise DataError(f"targets: need a 1-D array of at least 2 candidates, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"targets: {int(np.sum(~np.isfinite(y)))} missing or infinite values; "
                        "drop or fill those candidates first")
    pool_size = y.size
    if q < 1 or init < 1 or init >= pool_size or trials < 1:
        raise ConfigError(f"campaign: need batch >= 1, 1 <= init < pool size ({pool_size}) and "
                          f"trials >= 1 (got batch={q}, init={init}, trials={trials})")
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
    return pool, fn, y


class _Plan(NamedTuple):
    """What every phase of one campaign shares: the method, objective, surrogate function,
    relearner, pool (and its targets as numpy), picks per round, round limit, trial count."""

    method: Method
    objective: Objective
    fn: Surrogate | None
    relearn: Relearn | None
    pool: _Pool
    y: np.ndarray
    q: int
    limit: int
    trials: int


@dataclasses.dataclass
class _Clock:
    """The counters shared by the running trials, advanced by the scheduler: n revealed rows,
    rnd rounds done, fit_n rows at the last hyper-parameter fit, next_learn rows at the next
    relearning of the features."""

    n: int
    rnd: int
    fit_n: int
    next_learn: int

    def next_fit(self, growth: float) -> int:
        return max(math.ceil(self.fit_n * growth - 1e-9), self.fit_n + 1)


def _rounds(batch: TrialState, rows: np.ndarray, size: int, plan: _Plan, clock: _Clock
            ) -> TrialState:
    """The running trials ``batch`` (pool rows ``rows``) in the buffer of ``size`` rows: compiled
    phases until the buffer is full, every trial is done or the round limit is reached, with
    the features relearned and the GP refit between them when due."""
    method, q, pool_size = plan.method, plan.q, plan.y.size
    while True:
        stop_n = pool_size + q
        learned = clock.n >= clock.next_learn
        if learned:
            batch = _relearned(batch, plan.relearn, plan.y, rows)
            clock.next_learn = clock.n + plan.relearn.every * q
        if method.kind == "gp":
            if learned or clock.n >= clock.next_fit(method.refit_growth):
                batch = refit(batch, plan.pool, jnp.int32(method.refit_steps), method=method,
                              size=min(size, method.fit_size), restarts=1)
                clock.fit_n = clock.n
            stop_n = min(clock.next_fit(method.refit_growth), clock.next_learn)
        batch, shared = run_phase(
            batch, Shared(jnp.int32(clock.rnd), jnp.int32(clock.n)), plan.pool,
            jnp.int32(plan.limit), jnp.int32(stop_n), method=method, objective=plan.objective,
            surrogate=plan.fn, size=size, q=q)
        clock.rnd, clock.n = int(shared.round), int(shared.n)
        if not bool(jnp.any(batch.active)) or clock.n + q > size or clock.rnd >= plan.limit:
            return batch


def _schedule(states: TrialState, sizes: Sequence[int], plan: _Plan, clock: _Clock,
              on_phase: Callable[[int, int, int], None] | None) -> TrialState:
    """Every trial run to its end, phase by phase (one buffer size each), the running trials
    gathered (padded to a power of two) before each phase; returns the final states (numpy,
    in trial order)."""
    host = jax.tree.map(np.array, states)  # filled in as phases end
    for size in sizes:
        running = np.flatnonzero(host.active)
        if running.size == 0 or clock.rnd >= plan.limit:
            break
        if clock.n + plan.q > size:
            continue
        if on_phase is not None:
            on_phase(size, int(running.size), clock.rnd)
        n_run = _bucket(running.size, plan.trials)
        rows = np.concatenate([running, np.full(n_run - running.size, running[0])])
        pad = np.arange(n_run) >= running.size
        batch = jax.tree.map(lambda a: jnp.asarray(a[rows]), host)
        batch = batch._replace(active=batch.active & jnp.asarray(~pad))
        out = jax.tree.map(np.asarray, _rounds(batch, rows, size, plan, clock))
        keep = ~pad
        for dst, src in zip(jax.tree.leaves(host), jax.tree.leaves(out), strict=True):
            dst[running] = src[keep]
    return host


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
    check_method(method)
    q, init, trials = int(batch), int(init), int(trials)
    pool, fn, y = _pool(method, targets, features, surrogate, objective, q=q, init=init,
                        trials=trials)
    pool_size = y.size
    states = init_trials(jax.random.PRNGKey(seed), pool.best, init=init, q=q, trials=trials,
                         d=pool.xs.shape[1], thompson=method.acquisition == "ts")
    if relearn is not None:
        if method.kind != "gp" or relearn.every < 1:
            raise ConfigError("relearning features needs a 'gp' method and every >= 1 round")
        states = states._replace(xs=jnp.broadcast_to(pool.xs, (trials, *pool.xs.shape)))
    next_learn = init + relearn.every * q if relearn is not None else pool_size + q
    phased = method.kind == "gp" or isinstance(fn, BufferSurrogate)
    sizes = list(buffers) if buffers is not None else (
        buffer_sizes(pool_size, init, q) if phased else [pool_size + q])
    if sizes[-1] < pool_size + q and max_rounds is None:
        sizes.append(pool_size + q)
    limit = max_rounds if max_rounds is not None else pool_size
    plan = _Plan(method, objective, fn, relearn, pool, y, q, limit, trials)
    with single_threaded_blas():
        if method.kind == "gp":
            states = refit(states, pool, jnp.int32(method.fit.steps), method=method,
                           size=min(sizes[0], method.fit_size), restarts=method.fit.restarts)
        host = _schedule(states, sizes, plan, _Clock(init, 0, init, next_learn), on_phase)

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
