"""Acquisition functions rank known cases correctly; batches never repeat or re-choose."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from nested_ae_jax.bo import acquisition

# One compiled program per function (op-by-op execution compiles every primitive separately).
acq = SimpleNamespace(
    expected_improvement=jax.jit(acquisition.expected_improvement),
    log_expected_improvement=jax.jit(acquisition.log_expected_improvement),
    upper_confidence_bound=jax.jit(acquisition.upper_confidence_bound),
    select_top=jax.jit(acquisition.select_top, static_argnums=2),
    thompson=jax.jit(acquisition.thompson),
    kriging_believer=acquisition.kriging_believer,
)


def test_expected_improvement_closed_form():
    mean = np.array([0.0, 1.0, 2.0, -3.0])
    std = np.array([1.0, 0.5, 2.0, 0.1])
    best = 0.5
    z = (mean - best) / std
    ref = (mean - best) * norm.cdf(z) + std * norm.pdf(z)
    np.testing.assert_allclose(acq.expected_improvement(mean, std, best), ref, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(acq.log_expected_improvement(mean, std, best),
                               np.log(ref), rtol=1e-4)


def test_log_ei_is_finite_and_ordered_where_ei_underflows():
    """Far below the incumbent EI is 0 in float32 for all of these; log EI still ranks them
    (higher mean first) and agrees with the float64 asymptote."""
    mean = jnp.asarray([-30.0, -60.0, -200.0, -2000.0])
    std = jnp.ones(4)
    ei = acq.expected_improvement(mean, std, 0.0)
    log_ei = acq.log_expected_improvement(mean, std, 0.0)
    assert np.all(np.asarray(ei) == 0)
    assert np.all(np.isfinite(log_ei)) and np.all(np.diff(np.asarray(log_ei)) < 0)
    z = np.asarray(mean, np.float64)
    asym = -0.5 * z**2 - 0.5 * np.log(2 * np.pi) - 2 * np.log(-z) + np.log1p(-3 / z**2)
    np.testing.assert_allclose(log_ei, asym, rtol=1e-5)
    # continuous and increasing across the branch points (-10 and -1)
    z = jnp.linspace(-12.0, 3.0, 3001)
    values = np.asarray(acq.log_expected_improvement(z, jnp.ones_like(z), 0.0))
    assert np.all(np.diff(values) > 0)


def test_ei_prefers_higher_mean_at_equal_std_and_higher_std_at_equal_mean():
    for fn in (acq.expected_improvement, acq.log_expected_improvement):
        s = fn(jnp.asarray([0.0, 0.5, 1.0]), jnp.ones(3), 0.8)
        assert int(jnp.argmax(s)) == 2 and s[0] < s[1] < s[2]
        s = fn(jnp.full(3, 0.0), jnp.asarray([0.1, 1.0, 2.0]), 0.8)
        assert int(jnp.argmax(s)) == 2 and s[0] < s[1] < s[2]


def test_ucb_beta_trades_mean_for_std():
    mean = jnp.asarray([1.0, 0.0])
    std = jnp.asarray([0.1, 1.0])
    assert int(jnp.argmax(acq.upper_confidence_bound(mean, std, 0.0))) == 0
    assert int(jnp.argmax(acq.upper_confidence_bound(mean, std, 4.0))) == 1
    np.testing.assert_allclose(acq.upper_confidence_bound(mean, std, 4.0), [1.2, 2.0])


def test_revealed_candidates_are_never_chosen():
    scores = jnp.asarray([5.0, 4.0, jnp.nan, 1.0, 3.0])
    available = jnp.asarray([False, True, True, True, True])
    idx, valid = acq.select_top(scores, available, 3)
    assert list(np.asarray(idx)) == [1, 4, 3] and bool(valid.all())
    # the non-finite score ranks last among the available, before any unavailable one
    idx, valid = acq.select_top(scores, available, 5)
    assert list(np.asarray(idx))[:4] == [1, 4, 3, 2]
    assert list(np.asarray(valid)) == [True, True, True, True, False]


@pytest.mark.parametrize("q", [1, 3])
def test_batches_are_distinct_and_avoid_revealed(q):
    key = jax.random.PRNGKey(0)
    draws = jax.random.normal(key, (q, 30))
    available = jnp.arange(30) % 3 != 0
    picks, valid = acq.thompson(draws, available)
    picks = np.asarray(picks)
    assert len(set(picks)) == q and bool(valid.all())
    assert not np.any(picks % 3 == 0)
    # each pick is its own draw's best among what was left
    left = np.asarray(available).copy()
    for j, p in enumerate(picks):
        d = np.where(left, np.asarray(draws[j]), -np.inf)
        assert p == int(np.argmax(d))
        left[p] = False


def test_kriging_believer_spreads_a_batch():
    """Two equally good bumps: after picking one, the fantasised observation collapses the
    uncertainty near it, so the second pick goes to the other bump, not the neighbour."""
    xs = jnp.asarray([0.0, 0.05, 1.0, 1.05, 0.5])
    base_mean = jnp.asarray([1.0, 0.99, 0.98, 0.97, 0.0])

    def predict(picks, values, count):
        # a toy surrogate: std shrinks to 0 within 0.2 of any fantasised pick
        near = jnp.zeros(5, bool)
        for j in range(2):
            near = near | ((j < count) & (jnp.abs(xs - xs[picks[j]]) < 0.2))
        return base_mean, jnp.where(near, 0.0, 1.0)

    ucb = lambda m, s, best: acq.upper_confidence_bound(m, s, 1.0)
    picks, valid = jax.jit(lambda a, b: acq.kriging_believer(predict, ucb, a, b, 2))(
        jnp.ones(5, bool), jnp.float32(0.0))
    assert list(np.asarray(picks)) == [0, 2] and bool(valid.all())
    # without the fantasy update the top-2 would be the two neighbours
    idx, _ = acq.select_top(ucb(base_mean, jnp.ones(5), 0.0), jnp.ones(5, bool), 2)
    assert list(np.asarray(idx)) == [0, 1]
