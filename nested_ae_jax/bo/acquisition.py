"""Acquisition functions and batch (q > 1) selection over a finite pool, as pure array functions.

Scores are "higher is better" and the objective is maximised (``campaign`` turns min / target
objectives into a utility to maximise). Candidates not ``available`` (already revealed, or
already picked in this batch) are never chosen: their score is -inf; a non-finite score of an
available candidate ranks below every finite one but above unavailable ones.

Shapes: P pool candidates, q picks per round.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

Array = jax.Array

_LOG_SQRT_2PI = float(0.5 * np.log(2 * np.pi))


def expected_improvement(mean: Array, std: Array, best: Array, xi: float = 0.0) -> Array:
    """E[max(f - best - xi, 0)] for f ~ N(mean, std^2), elementwise (P,) -> (P,)."""
    std = jnp.maximum(std, 1e-12)
    z = (mean - best - xi) / std
    return std * (jnp.exp(-0.5 * z * z - _LOG_SQRT_2PI) + z * ndtr(z))


def _log_h(z: Array) -> Array:
    """log(phi(z) + z Phi(z)), accurate for very negative z (LogEI, Ament et al. 2023).

    z > -1: directly. -10 <= z <= -1: log phi(z) + log(1 - |z| Phi(z) / phi(z)), the ratio from
    ``log_ndtr`` (no underflow). z < -10: the asymptotic series
    log phi(z) - 2 log|z| + log(1 - 3/z^2 + 15/z^4 - 105/z^6 + 945/z^8) (relative error < 1e-6).
    (``jax.scipy.special.erfcx`` would be the textbook route, but in float32 on jax 0.10 it
    returns 0 for inputs in [9.195, 9.419].)
    """
    zd = jnp.maximum(z, -1.0)
    direct = jnp.log(jnp.exp(-0.5 * zd * zd - _LOG_SQRT_2PI) + zd * ndtr(zd))
    zm = jnp.clip(z, -10.0, -1.0)
    log_ratio = jnp.log(-zm) + log_ndtr(zm) + 0.5 * zm * zm + _LOG_SQRT_2PI
    middle = (-0.5 * zm * zm - _LOG_SQRT_2PI
              + jnp.log(-jnp.expm1(jnp.minimum(log_ratio, -1e-7))))
    za = jnp.minimum(z, -10.0)
    u = 1.0 / (za * za)
    series = 1.0 + u * (-3.0 + u * (15.0 + u * (-105.0 + u * 945.0)))
    asym = -0.5 * za * za - _LOG_SQRT_2PI + jnp.log(u) + jnp.log(series)
    return jnp.where(z > -1.0, direct, jnp.where(z >= -10.0, middle, asym))


def log_expected_improvement(mean: Array, std: Array, best: Array, xi: float = 0.0) -> Array:
    """log of ``expected_improvement``, finite where EI underflows to 0 (ranks those too)."""
    std = jnp.maximum(std, 1e-12)
    z = (mean - best - xi) / std
    return _log_h(z) + jnp.log(std)


def upper_confidence_bound(mean: Array, std: Array, beta: float = 2.0) -> Array:
    """mean + sqrt(beta) * std (the GP-UCB / BoTorch convention), (P,) -> (P,)."""
    return mean + jnp.sqrt(beta) * std


ACQUISITIONS = ("ei", "ucb", "ts")


def score_fn(name: str, beta: float = 2.0, xi: float = 0.0) -> Callable[[Array, Array, Array],
                                                                       Array]:
    """score(mean, std, best) of a named acquisition ranked by a score: ``ei`` (its log, finite
    where EI underflows) or ``ucb``; Thompson sampling ranks draws, not scores."""
    if name == "ei":
        return lambda m, s, b: log_expected_improvement(m, s, b, xi)
    return lambda m, s, b: upper_confidence_bound(m, s, beta)


def mask_scores(scores: Array, available: Array) -> Array:
    """(P,) scores with unavailable candidates at -inf and non-finite available ones just above."""
    low = jnp.finfo(scores.dtype).min
    return jnp.where(available, jnp.where(jnp.isfinite(scores), scores, low), -jnp.inf)


def select_top(scores: Array, available: Array, q: int) -> tuple[Array, Array]:
    """The q best available candidates: indices (q,) int32 (distinct) and valid (q,) bool
    (False where fewer than q candidates were available)."""
    masked = mask_scores(scores, available)
    _, idx = jax.lax.top_k(masked, q)
    return idx.astype(jnp.int32), available[idx]


def select_sequential(
    score_fn: Callable[[Array, Array], Array], available: Array, q: int
) -> tuple[Array, Array]:
    """q picks one at a time: pick j maximises ``score_fn(j, picks_so_far)`` (P,) over the still
    available candidates. ``picks_so_far`` (q,) int32 holds the first j picks (the rest 0).
    Returns indices (q,) int32 (distinct) and valid (q,) bool."""

    def body(j, carry):
        picks, valid, avail = carry
        s = mask_scores(score_fn(j, picks), avail)
        pick = jnp.argmax(s).astype(jnp.int32)
        return picks.at[j].set(pick), valid.at[j].set(avail[pick]), avail.at[pick].set(False)

    init = (jnp.zeros(q, jnp.int32), jnp.zeros(q, bool), jnp.asarray(available, bool))
    picks, valid, _ = jax.lax.fori_loop(0, q, body, init)
    return picks, valid


def kriging_believer(
    predict: Callable[[Array, Array, Array], tuple[Array, Array]],
    acquisition: Callable[[Array, Array, Array], Array],
    available: Array,
    best: Array,
    q: int,
) -> tuple[Array, Array]:
    """Batch of q by the kriging believer: pick the acquisition's best, pretend its posterior
    mean was observed, update the surrogate and the incumbent, repeat.

    predict(picks (q,), values (q,), count ()) -> (mean (P,), std (P,)): the surrogate after
    also observing the first ``count`` picks at ``values``. acquisition(mean, std, best) -> (P,)
    scores. best () is the incumbent (best revealed utility). Returns indices (q,), valid (q,).
    """

    def body(j, carry):
        picks, values, valid, avail, inc = carry
        mean, std = predict(picks, values, j)
        s = mask_scores(acquisition(mean, std, inc), avail)
        pick = jnp.argmax(s).astype(jnp.int32)
        return (picks.at[j].set(pick), values.at[j].set(mean[pick]),
                valid.at[j].set(avail[pick]), avail.at[pick].set(False),
                jnp.maximum(inc, mean[pick]))

    dtype = jnp.result_type(best, jnp.float32)
    init = (jnp.zeros(q, jnp.int32), jnp.zeros(q, dtype), jnp.zeros(q, bool),
            jnp.asarray(available, bool), jnp.asarray(best, dtype))
    picks, _, valid, _, _ = jax.lax.fori_loop(0, q, body, init)
    return picks, valid


def thompson(draws: Array, available: Array) -> tuple[Array, Array]:
    """Thompson sampling batch: pick j is the argmax of posterior draw j (q, P) among the still
    available candidates (so picks are distinct). Returns indices (q,), valid (q,)."""
    return select_sequential(lambda j, _: draws[j], available, draws.shape[0])
