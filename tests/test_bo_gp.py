"""The GP surrogate against an independent closed form (numpy Matern-5/2 + linalg.solve)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tinygp import kernels, transforms
from tinygp.kernels.distance import L2Distance

from nested_ae_jax.bo import gp

# Compiled once per shape: op-by-op execution of these small programs is much slower.
posterior = jax.jit(gp.posterior)
log_marginal_likelihood = jax.jit(gp.log_marginal_likelihood)
posterior_sample = jax.jit(gp.posterior_sample, static_argnames=("num", "jitter"))

PARAMS = gp.GPParams(jnp.float32(0.1), jnp.float32(0.2), jnp.asarray([0.1, -0.2, 0.3], jnp.float32),
                     jnp.float32(np.log(0.1)))


def np_matern52(a, b, lengthscale, amplitude):
    r = np.sqrt((((a[:, None, :] - b[None, :, :]) / lengthscale) ** 2).sum(-1))
    s = np.sqrt(5.0) * r
    return amplitude**2 * (1 + s + s**2 / 3) * np.exp(-s)


def np_gp(params, x, y, mask, xq):
    """Posterior mean/variance and log marginal likelihood on the observed rows only, with the
    module's standardisation (observed rows' mean / population std) done by hand."""
    xo, yo = x[mask].astype(np.float64), y[mask].astype(np.float64)
    xm, xs = xo.mean(0), xo.std(0)
    ym, ys = yo.mean(), yo.std()
    a, q, t = (xo - xm) / xs, (xq - xm) / xs, (yo - ym) / ys
    ls = np.exp(np.asarray(params.log_lengthscale, np.float64))
    amp = np.exp(float(params.log_amplitude))
    noise2 = np.exp(2 * float(params.log_noise))
    c = float(params.mean)
    k = np_matern52(a, a, ls, amp) + noise2 * np.eye(len(a))
    kq = np_matern52(q, a, ls, amp)
    mean = ym + ys * (c + kq @ np.linalg.solve(k, t - c))
    var = ys**2 * (amp**2 - np.einsum("ij,ji->i", kq, np.linalg.solve(k, kq.T)))
    r = t - c
    lml = (-0.5 * r @ np.linalg.solve(k, r) - 0.5 * np.linalg.slogdet(k)[1]
           - 0.5 * len(r) * np.log(2 * np.pi))
    return mean, var, lml


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] - 0.5 * x[:, 2] ** 2
    mask = np.array([1, 1, 0, 1, 1, 0, 1, 1, 0], bool)
    xq = rng.normal(size=(6, 3))
    return x, y, mask, xq


def test_kernel_is_the_l2_matern52_of_tinygp_and_of_the_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    ls, amp = np.array([0.5, 1.0, 2.0]), 1.3
    ours = gp.Matern52ARD(jnp.float32(amp), jnp.asarray(ls, jnp.float32))
    theirs = amp**2 * transforms.Linear(1 / ls, kernels.Matern52(distance=L2Distance()))
    np.testing.assert_allclose(ours(a, b), jax.jit(lambda a, b: theirs(a, b))(a, b), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ours(a, b), np_matern52(a, b, ls, amp), rtol=1e-5, atol=1e-6)
    # evaluate (per pair) agrees with the matmul path; the diagonal is amplitude^2
    np.testing.assert_allclose(ours.evaluate(a[0], b[1]), ours(a, b)[0, 1], rtol=1e-5)
    np.testing.assert_allclose(ours(a), np.full(5, amp**2), rtol=1e-6)


def test_posterior_matches_closed_form_with_masked_rows(problem):
    x, y, mask, xq = problem
    mean, var = posterior(PARAMS, x, y, mask, xq)
    ref_mean, ref_var, _ = np_gp(PARAMS, x, y, mask, xq)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, ref_var, rtol=1e-3, atol=1e-4)
    # at an observed point the variance is about the noise level, far from the prior's
    _, var_obs = posterior(PARAMS, x, y, mask, x[mask][:1])
    assert float(var_obs[0]) < 0.05 * float(np.var(y[mask]))


def test_masked_rows_do_not_matter(problem):
    """Not even NaN inputs or targets in masked rows change anything."""
    x, y, mask, xq = problem
    x2, y2 = x.copy(), y.copy()
    x2[~mask] = np.nan
    y2[~mask] = np.nan
    for a, b in zip(posterior(PARAMS, x, y, mask, xq), posterior(PARAMS, x2, y2, mask, xq)):
        np.testing.assert_array_equal(a, b)
    assert float(log_marginal_likelihood(PARAMS, x, y, mask)) == float(
        log_marginal_likelihood(PARAMS, x2, y2, mask))


def test_log_marginal_likelihood_matches_numpy(problem):
    x, y, mask, _ = problem
    _, _, ref = np_gp(PARAMS, x, y, mask, x[:1])
    np.testing.assert_allclose(float(log_marginal_likelihood(PARAMS, x, y, mask)), ref,
                               rtol=1e-5)


def test_gradient_of_the_likelihood_matches_tinygp_autodiff(problem):
    """The hand-written VJP against autodiff through tinygp's GaussianProcess."""
    x, y, mask, _ = problem
    scaler = gp.fit_standardizer(x, mask)
    t = gp.standardize_targets(y, mask)[mask]

    def theirs(p):
        return gp.as_tinygp(p, x, mask, scaler).log_probability(t)

    np.testing.assert_allclose(float(theirs(PARAMS)),
                               float(log_marginal_likelihood(PARAMS, x, y, mask)), rtol=1e-5)
    ours = jax.jit(jax.grad(lambda p: gp.log_marginal_likelihood(p, x, y, mask, scaler)))(PARAMS)
    ref = jax.jit(jax.grad(theirs))(PARAMS)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_tinygp_condition_gives_the_same_posterior(problem):
    x, y, mask, xq = problem
    scaler = gp.fit_standardizer(x, mask)
    process = gp.as_tinygp(PARAMS, x, mask, scaler)
    cond = process.condition(gp.standardize_targets(y, mask)[mask],
                             gp.standardize(scaler, jnp.asarray(xq))).gp
    yo = y[mask]
    mean, var = posterior(PARAMS, x, y, mask, xq)
    np.testing.assert_allclose(mean, yo.mean() + yo.std() * cond.loc, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, yo.var() * cond.variance, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("n", [5, 16, 37])
def test_cholesky_and_inverse(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n))
    cov = a @ a.T / n + np.eye(n)
    chol, inv = jax.jit(gp.cholesky_and_inverse)(jnp.asarray(cov, jnp.float32))
    np.testing.assert_allclose(chol, np.linalg.cholesky(cov), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inv, np.linalg.inv(np.linalg.cholesky(cov)), rtol=1e-4, atol=1e-5)


def test_posterior_draws_have_the_posterior_moments(problem):
    x, y, mask, xq = problem
    key = jax.random.PRNGKey(0)
    mean, var = posterior(PARAMS, x, y, mask, xq)
    draws = posterior_sample(PARAMS, x, y, mask, xq, key, num=20000, jitter=1e-6)
    assert draws.shape == (20000, 6)
    se = np.sqrt(var / 20000)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * se + 1e-3)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.06, atol=1e-3)
    # pool form: the training rows are query rows, given by index; draws are joint (the
    # correlation between two nearby query points is that of the posterior covariance)
    pool = np.concatenate([x, xq])
    index = np.arange(9)
    pool_draws = posterior_sample(PARAMS, x, y, mask, pool, key, num=20000,
                                     x_scaler=gp.fit_standardizer(x, mask), train_index=index,
                                     jitter=1e-6)
    np.testing.assert_allclose(pool_draws[:, 9:].mean(0), mean, atol=float(5 * se.max() + 1e-3))
    np.testing.assert_allclose(pool_draws[:, 9:].var(0), var, rtol=0.06, atol=1e-3)


def test_fit_finds_the_relevant_dimension():
    """Data from a function of x0 only: the fitted length scale of x1 is much longer, and the
    fit beats the starting point's likelihood."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(40, 2))
    y = np.sin(2 * x[:, 0]) + 0.01 * rng.normal(size=40)
    mask = np.ones(40, bool)
    fitted = jax.jit(lambda k: gp.fit_hyperparameters(
        x, y, mask, k, config=gp.FitConfig(restarts=2, steps=150, lengthscale_prior=False)))(
        jax.random.PRNGKey(0))
    ls = np.exp(np.asarray(fitted.log_lengthscale))
    assert ls[1] > 5 * ls[0]
    start = gp.default_params(2)
    assert float(log_marginal_likelihood(fitted, x, y, mask)) > float(
        log_marginal_likelihood(start, x, y, mask)) + 10
    noise = float(np.exp(fitted.log_noise))
    assert 0.01 <= noise < 0.1  # near the floor: the data are almost noise-free
