"""Exact Shapley values by coalition enumeration (nested_ae_jax.shapley) against an
independent brute-force reference and the Shapley axioms."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nested_ae_jax.shapley import coalition_masks, exact_shapley, shapley_coefficients


def brute_force_shapley(f, x, background):
    """Textbook definition, one row at a time, in float64 numpy: for every player i and every
    subset S of the others, weight |S|!(d-|S|-1)!/d! times v(S+i) - v(S), where v(S) is the
    mean over background rows of f with S's columns taken from x."""
    x = np.asarray(x, np.float64)
    bg = np.asarray(background, np.float64)
    n, d = x.shape

    def value(row, members):
        comp = bg.copy()
        comp[:, list(members)] = row[list(members)]
        return np.asarray(f(comp)).mean(axis=0)

    k = np.asarray(f(bg[:1])).shape[-1]
    phi = np.zeros((n, d, k))
    for r in range(n):
        for i in range(d):
            others = [j for j in range(d) if j != i]
            for size in range(d):
                w = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                for s in itertools.combinations(others, size):
                    phi[r, i] += w * (value(x[r], s + (i,)) - value(x[r], s))
    return phi


def tiny_mlp(d=5, k=2, seed=0):
    """A random 2-layer tanh MLP with an interaction-heavy output (x_0 * x_1 term)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(d, 7)).astype(np.float32)
    w2 = rng.normal(size=(7, k)).astype(np.float32)

    def f(z):
        z = jnp.asarray(z, jnp.float32)
        out = jnp.tanh(z @ w1) @ w2
        return out + (z[:, 0] * z[:, 1])[:, None]

    return lambda z: np.asarray(f(z), np.float64), f


def test_coefficients_give_efficiency_and_null_player_by_construction():
    c = shapley_coefficients(4)
    masks = coalition_masks(4)
    assert c.shape == (16, 4) and masks.shape == (16, 4)
    # sum over players of the coefficients: +1 on the full coalition, -1 on the empty one
    total = c.sum(axis=1)
    assert total[-1] == pytest.approx(1.0) and total[0] == pytest.approx(-1.0)
    np.testing.assert_allclose(total[1:-1], 0.0, atol=1e-12)
    # every player's coefficients sum to 0 (a constant value function gets phi = 0)
    np.testing.assert_allclose(c.sum(axis=0), 0.0, atol=1e-12)
    # coalition 0b0101 = players 0 and 2
    assert masks[5].tolist() == [True, False, True, False]


@pytest.mark.parametrize("d", [4, 5])
def test_matches_brute_force_reference_and_is_efficient(d):
    f_np, f_jax = tiny_mlp(d=d, k=2, seed=d)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, d)).astype(np.float32)
    bg = rng.normal(size=(6, d)).astype(np.float32)
    phi, base, fx = exact_shapley(f_jax, x, bg)
    ref = brute_force_shapley(f_np, x, bg)
    assert phi.shape == (3, d, 2)
    np.testing.assert_allclose(phi, ref, rtol=1e-4, atol=1e-4)
    # efficiency: values sum to f(x) - E_background f, computed independently here
    np.testing.assert_allclose(phi.sum(axis=1), f_np(x) - f_np(bg).mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(fx, f_np(x), atol=1e-5)
    np.testing.assert_allclose(base, f_np(bg).mean(axis=0), atol=1e-5)


def test_chunked_evaluation_equals_single_pass():
    """A tiny evaluation budget forces many coalition chunks and row blocks (with a padded
    last block); the result must not change."""
    _, f_jax = tiny_mlp(d=5, k=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 5))
    bg = rng.normal(size=(3, 5))
    full, _, _ = exact_shapley(f_jax, x, bg)
    chunked, _, _ = exact_shapley(f_jax, x, bg, budget=8)
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-6)


def test_linear_model_gets_weight_times_deviation_from_background_mean():
    w = np.array([2.0, -1.0, 0.0, 0.5], np.float32)
    f = lambda z: (z @ w)[:, None]  # noqa: E731
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 4)).astype(np.float32)
    bg = rng.normal(size=(10, 4)).astype(np.float32)
    phi, _, _ = exact_shapley(f, x, bg)
    np.testing.assert_allclose(phi[..., 0], w * (x - bg.mean(axis=0)), rtol=1e-5, atol=1e-5)
    assert np.abs(phi[:, 2, 0]).max() < 1e-6  # a null player gets nothing (up to rounding)


def test_rejects_mismatched_shapes_and_too_many_players():
    f = lambda z: z[:, :1]  # noqa: E731
    with pytest.raises(ValueError, match="share d"):
        exact_shapley(f, np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="too costly"):
        exact_shapley(f, np.zeros((1, 21)), np.zeros((1, 21)))


def test_jit_compatible_function_with_integer_decoded_player():
    """A player may encode a categorical input as its integer code (decoded inside f)."""
    table = jnp.array([0.0, 10.0, -5.0])

    def f(z):
        return (table[z[:, 1].astype(jnp.int32)] + z[:, 0])[:, None]

    x = np.array([[1.0, 1.0]])
    bg = np.array([[0.0, 0.0], [0.0, 2.0]])
    phi, base, fx = exact_shapley(f, x, bg)
    # player 1 (the category): 10 - mean(0, -5) = 12.5; player 0: 1 - 0 = 1
    np.testing.assert_allclose(phi[0, :, 0], [1.0, 12.5], atol=1e-5)
    assert fx[0, 0] == pytest.approx(11.0) and base[0] == pytest.approx(-2.5)
    assert jax.numpy.asarray(phi).shape == (1, 2, 1)
