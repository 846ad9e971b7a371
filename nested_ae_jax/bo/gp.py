"""Gaussian-process surrogate: Matern-5/2 with ARD length scales, constant mean, fixed shapes.

Why tinygp: it is a small, well-kept GP library written in JAX that depends only on jax and
equinox, so it follows the project's JAX versions (gpjax 1.0 pins ``jax<0.11`` and pulls a dozen
packages). Its kernels are equinox modules (pytrees), so a kernel built from traced
hyper-parameters works under ``jit``, ``vmap``, ``lax.scan`` and ``grad``. The kernel here,
``Matern52ARD``, is a tinygp kernel (it composes with tinygp's kernels and plugs into
``tinygp.GaussianProcess``, see ``as_tinygp``), with two departures measured on this 2-core CPU:
its matrices are built by one matmul (tinygp's generic pairwise ``vmap`` materialises an
(n, m, d) array: ~10x slower, and its gradient worse), and the log marginal likelihood has a
hand-written gradient (``(alpha alpha^T - K^-1) / 2``; autodiff through the Cholesky was ~15x the
forward pass). Beware: tinygp's own stationary kernels default to the *L1* distance
(``kernels.Matern52()`` is not the usual Matern-5/2 in more than one dimension); the tests
compare ``Matern52ARD`` with ``Linear(1/l, Matern52(distance=L2Distance()))``.

Fixed shapes and row masks. Every function takes ``mask`` (n,) bool: only rows where it is True
are data. A masked-out row's kernel row and column are zero, its diagonal one and its residual
zero, so the covariance matrix is block-diagonal ``[[K_obs + s2 I, 0], [0, I]]`` (up to row
order): the Cholesky factor, the solves, the log determinant and the quadratic form equal those
of the observed rows alone, exactly (no "huge noise" approximation). A campaign keeps a buffer
of fixed size in ``lax.scan`` / ``vmap`` while the number of revealed rows grows.

Standardisation. Targets are standardised inside (mean and standard deviation of the observed
rows); the hyper-parameters (``GPParams``) live in those standardised units, and ``posterior``
returns the original units. Inputs are standardised with a ``Standardizer``: by default the
observed rows' own statistics; a pool-based campaign passes the pool's (the candidates' inputs
are known, only targets are hidden), which keeps length scales comparable between rounds.

Float32 (JAX's default) is enough with the noise floor of ``Bounds`` (noise std >= 0.01 of the
target spread); everything also runs in float64 when x64 is enabled.

The Cholesky factor, its inverse and the Gaussian log density are in ``linalg``.

Shapes: n training rows (some masked), m query rows, d input dimensions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tinygp
from tinygp import kernels

from .linalg import _LOG_2PI, _mvn_logpdf, cholesky_and_inverse  # noqa: F401 (re-exported)

Array = jax.Array


class GPParams(NamedTuple):
    """Hyper-parameters, in standardised target units (and standardised input units).

    mean: () constant prior mean; log_amplitude: () log signal standard deviation;
    log_lengthscale: (d,) log ARD length scales; log_noise: () log noise standard deviation.
    """

    mean: Array
    log_amplitude: Array
    log_lengthscale: Array
    log_noise: Array


class Standardizer(NamedTuple):
    """Per-column affine map ``(x - mean) / scale``; mean, scale: (d,)."""

    mean: Array
    scale: Array


class Bounds(NamedTuple):
    """Box bounds (natural units, standardised data) the fit keeps hyper-parameters in."""

    amplitude: tuple[float, float] = (0.05, 20.0)
    lengthscale: tuple[float, float] = (0.01, 1000.0)
    noise: tuple[float, float] = (0.01, 1.0)  # noise std: variance 1e-4 .. 1 (float32-safe)


class FitConfig(NamedTuple):
    """How ``fit_hyperparameters`` maximises the (log marginal likelihood + log prior).

    restarts: random initial points optimised at once (vmapped; the first is the default or
    the warm start); steps: Adam steps; learning_rate: Adam's; lengthscale_prior: add the
    dimension-scaled log-normal prior on length scales of Hvarfner et al. (2024), loc
    sqrt(2) + log(d)/2, scale sqrt(3) (BoTorch's default), which keeps ARD sane with a handful of
    points in 20 dimensions; False gives plain maximum marginal likelihood.
    """

    restarts: int = 4
    steps: int = 100
    learning_rate: float = 0.05
    lengthscale_prior: bool = True
    bounds: Bounds = Bounds()


# ---------------------------------------------------------------------------------------------
# standardisation


def fit_standardizer(x: Array, mask: Array | None = None) -> Standardizer:
    """Mean and standard deviation of the rows of x (n, d) where mask (n,) is True; columns
    with (near) zero spread get scale 1."""
    x = jnp.asarray(x)
    w = jnp.ones(x.shape[0], x.dtype) if mask is None else jnp.asarray(mask, x.dtype)
    x = jnp.where(w[:, None] > 0, x, 0.0)
    count = jnp.maximum(w.sum(), 1.0)
    mean = (w[:, None] * x).sum(0) / count
    var = (w[:, None] * jnp.square(x - mean)).sum(0) / count
    scale = jnp.sqrt(var)
    return Standardizer(mean, jnp.where(scale > 1e-8 * (1 + jnp.abs(mean)), scale, 1.0))


def standardize(scaler: Standardizer, x: Array) -> Array:
    """(n, d) -> (n, d) standardised."""
    return (x - scaler.mean) / scaler.scale


def _target_stats(y: Array, mask: Array) -> tuple[Array, Array]:
    """Mean and std (scale 1 if zero or fewer than two rows) of y (n,) on mask (n,)."""
    w = mask.astype(y.dtype)
    count = jnp.maximum(w.sum(), 1.0)
    y0 = jnp.where(mask, y, 0.0)
    mean = y0.sum() / count
    var = (w * jnp.square(y0 - mean)).sum() / count
    std = jnp.sqrt(var)
    return mean, jnp.where(std > 1e-8 * (1 + jnp.abs(mean)), std, 1.0)


# ---------------------------------------------------------------------------------------------
# kernel


def _matern52_r2(r2: Array) -> Array:
    """Matern-5/2 correlation from squared scaled distances (any shape), gradient-safe at 0."""
    r2 = jnp.maximum(r2, 0.0)
    pos = r2 > 1e-12
    s = jnp.sqrt(5.0 * jnp.where(pos, r2, 1.0))
    s = jnp.where(pos, s, 0.0)
    return (1.0 + s + s * s / 3.0) * jnp.exp(-s)


def _sq_dist(a: Array, b: Array) -> Array:
    """Squared Euclidean distances (n, m) between rows of a (n, d) and b (m, d), by matmul."""
    return (jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :]
            - 2.0 * (a @ b.T))


class Matern52ARD(kernels.Kernel):
    """tinygp kernel ``amplitude^2 Matern52(||(x1 - x2) / lengthscale||_2)``.

    ``evaluate`` is tinygp's per-pair definition (identical to
    ``amplitude**2 * transforms.Linear(1 / lengthscale, kernels.Matern52(distance=L2Distance()))``);
    ``__call__`` builds whole matrices by one matmul instead of tinygp's pairwise ``vmap``, which
    materialises an (n, m, d) array and was ~10x slower (and its gradient more so) on a 2-core
    CPU. amplitude: (), lengthscale: (d,).
    """

    amplitude: Array
    lengthscale: Array

    def evaluate(self, X1, X2):
        r2 = jnp.sum(jnp.square((X1 - X2) / self.lengthscale))
        return jnp.square(self.amplitude) * _matern52_r2(r2)

    def evaluate_diag(self, X):
        return jnp.square(self.amplitude)

    def __call__(self, X1, X2=None):
        if X2 is None:
            return jnp.broadcast_to(jnp.square(self.amplitude), X1.shape[:1])
        a, b = X1 / self.lengthscale, X2 / self.lengthscale
        return jnp.square(self.amplitude) * _matern52_r2(_sq_dist(a, b))


def kernel(params: GPParams) -> Matern52ARD:
    """The tinygp kernel of ``params`` (on standardised inputs)."""
    return Matern52ARD(jnp.exp(params.log_amplitude), jnp.exp(params.log_lengthscale))


# ---------------------------------------------------------------------------------------------
# GP on masked rows


class _Prepared(NamedTuple):
    xs: Array  # (n, d) standardised inputs
    ys: Array  # (n,) standardised targets minus the prior mean, masked rows 0
    y_mean: Array
    y_std: Array


def _prepare(params, x, y, mask, x_scaler) -> tuple[_Prepared, Standardizer]:
    mask = jnp.asarray(mask, bool)
    x = jnp.where(mask[:, None], jnp.asarray(x), 0.0)  # masked rows: any value, even NaN
    if x_scaler is None:
        x_scaler = fit_standardizer(x, mask)
    y = jnp.asarray(y, x.dtype)
    y_mean, y_std = _target_stats(y, mask)
    resid = jnp.where(mask, (jnp.where(mask, y, 0.0) - y_mean) / y_std - params.mean, 0.0)
    return _Prepared(standardize(x_scaler, x), resid, y_mean, y_std), x_scaler


def _train_cov(params: GPParams, xs: Array, mask: Array) -> Array:
    """(n, n) ``[[K_obs + noise^2 I, 0], [0, I]]`` (in row order): masked rows decoupled."""
    m = mask.astype(xs.dtype)
    k = kernel(params)(xs, xs) * (m[:, None] * m[None, :])
    return k + jnp.diag(jnp.where(mask, jnp.exp(2 * params.log_noise), 1.0))


def log_marginal_likelihood(
    params: GPParams, x: Array, y: Array, mask: Array, x_scaler: Standardizer | None = None
) -> Array:
    """Log marginal likelihood () of the observed rows' *standardised* targets.

    x (n, d), y (n,), mask (n,) bool. Equals the log density of N(mean, K + noise^2 I) over the
    observed rows only, in standardised units (no Jacobian of the standardisation).
    """
    prep, _ = _prepare(params, x, y, mask, x_scaler)
    n_missing = mask.shape[0] - jnp.sum(mask)
    # The masked rows each contribute log N(0; 0, 1) = -log(2 pi) / 2: add it back.
    return _mvn_logpdf(_train_cov(params, prep.xs, mask), prep.ys) + 0.5 * n_missing * _LOG_2PI


def posterior(
    params: GPParams,
    x: Array,
    y: Array,
    mask: Array,
    x_query: Array,
    x_scaler: Standardizer | None = None,
) -> tuple[Array, Array]:
    """Posterior mean (m,) and variance (m,) of the latent function at x_query (m, d), in the
    original target units, given observed rows x (n, d), y (n,) where mask (n,) is True.
    Noise-free: the variance excludes the observation noise."""
    return posterior_at(posterior_factors(params, x, y, mask, x_scaler), x_query)


class Factors(NamedTuple):
    """A GP posterior precomputed for many later queries (``posterior_factors``): the
    hyper-parameters, the input scaler, standardised training inputs xs (n, d) (masked rows
    0), weights alpha (n,) and the inverse Cholesky factor (n, n) of the training covariance,
    the row mask and the target standardisation."""

    params: GPParams
    x_scaler: Standardizer
    xs: Array
    alpha: Array
    chol_inv: Array
    mask: Array
    y_mean: Array
    y_std: Array


def posterior_factors(params: GPParams, x: Array, y: Array, mask: Array,
                      x_scaler: Standardizer | None = None) -> Factors:
    """Factorise once what ``posterior`` needs of the training rows x (n, d), y (n,), mask
    (n,); ``posterior_at`` then costs O(n d + n^2) per query row and is differentiable in the
    query (for gradient-based acquisition maximisation)."""
    mask = jnp.asarray(mask, bool)
    prep, x_scaler = _prepare(params, x, y, mask, x_scaler)
    _, chol_inv = cholesky_and_inverse(_train_cov(params, prep.xs, mask))
    alpha = chol_inv.T @ (chol_inv @ prep.ys)
    return Factors(params, x_scaler, prep.xs, alpha, chol_inv, mask, prep.y_mean, prep.y_std)


def posterior_at(factors: Factors, x_query: Array) -> tuple[Array, Array]:
    """Posterior mean (m,) and variance (m,) at x_query (m, d), original units: equal to
    ``posterior`` on the rows ``factors`` was computed from."""
    f = factors
    xq = standardize(f.x_scaler, jnp.asarray(x_query, f.xs.dtype))
    k = kernel(f.params)
    kqn = k(xq, f.xs) * f.mask.astype(xq.dtype)
    v = f.chol_inv @ kqn.T
    mean = f.params.mean + kqn @ f.alpha
    var = jnp.maximum(k(xq) - jnp.sum(v * v, 0), 0.0)
    return f.y_mean + f.y_std * mean, jnp.square(f.y_std) * var


def posterior_sample(
    params: GPParams,
    x: Array,
    y: Array,
    mask: Array,
    x_query: Array,
    key: Array,
    num: int = 1,
    x_scaler: Standardizer | None = None,
    train_index: Array | None = None,
    jitter: float = 1e-4,
    prior_chol: Array | None = None,
) -> Array:
    """Joint posterior draws (num, m) of the latent function at x_query (m, d), original units.

    Pathwise (Matheron) update of a joint prior draw: ``f* + K*n (Knn + s2 I)^-1 (y - f_n - e)``
    with ``e`` drawn from the noise; exact in distribution for the kernel plus a ``jitter``
    nugget (relative to amplitude^2) that keeps the prior Cholesky alive in float32. Only the
    prior covariance is factorised: over [x_query; x] (m + n rows), or, when the training rows
    are query rows (a pool), over x_query alone with ``train_index`` (n,) giving their rows;
    ``prior_chol`` (m, m) may then pass that factor (``prior_cholesky``) precomputed.
    """
    prep, x_scaler = _prepare(params, x, y, mask, x_scaler)
    xq = standardize(x_scaler, jnp.asarray(x_query, prep.xs.dtype))
    n, m = prep.xs.shape[0], xq.shape[0]
    k = kernel(params)
    both = xq if train_index is not None else jnp.concatenate([xq, prep.xs])
    if prior_chol is not None and train_index is not None:
        chol = prior_chol
    else:
        chol = _prior_cholesky(params, both, jitter)
    k_noise, k_prior = jax.random.split(key)
    prior = chol @ jax.random.normal(k_prior, (both.shape[0], num), both.dtype)
    f_q = prior[:m]
    f_n = prior[train_index] if train_index is not None else prior[m:]
    eps = jnp.exp(params.log_noise) * jax.random.normal(k_noise, (n, num), both.dtype)
    resid = jnp.where(mask[:, None], prep.ys[:, None] - f_n - eps, 0.0)
    _, chol_inv = cholesky_and_inverse(_train_cov(params, prep.xs, mask))
    alpha = chol_inv.T @ (chol_inv @ resid)
    kqn = k(xq, prep.xs) * mask.astype(xq.dtype)
    draws = params.mean + f_q + kqn @ alpha  # (m, num)
    return (prep.y_mean + prep.y_std * draws).T


def _prior_cholesky(params: GPParams, xs: Array, jitter: float) -> Array:
    amp2 = jnp.exp(2 * params.log_amplitude)
    k_all = kernel(params)(xs, xs) + jitter * amp2 * jnp.eye(xs.shape[0], dtype=xs.dtype)
    return cholesky_and_inverse(k_all)[0]


def prior_cholesky(params: GPParams, x_query: Array, x_scaler: Standardizer | None = None,
                   jitter: float = 1e-4) -> Array:
    """(m, m) lower Cholesky factor of the prior covariance (standardised units, plus the
    ``jitter`` nugget) at x_query (m, d), for ``posterior_sample(prior_chol=...)``;
    ``x_scaler`` None: x_query is already standardised."""
    xq = jnp.asarray(x_query)
    if x_scaler is not None:
        xq = standardize(x_scaler, xq)
    return _prior_cholesky(params, xq, jitter)


def as_tinygp(
    params: GPParams, x: Array, mask: Array, x_scaler: Standardizer | None = None
) -> tinygp.GaussianProcess:
    """The same GP as a ``tinygp.GaussianProcess`` over the observed rows of x (n, d) (outside
    ``jit``: mask (n,) must be concrete), on standardised inputs, for tinygp's own API
    (``condition``, ``sample``, ``log_probability``); condition it on
    ``standardize_targets(y, mask)[mask]`` and map back with the observed rows' mean and std."""
    x = np.asarray(x)
    mask = np.asarray(mask, bool)
    if x_scaler is None:
        x_scaler = fit_standardizer(x, mask)
    xs = standardize(x_scaler, jnp.asarray(x[mask]))
    return tinygp.GaussianProcess(kernel(params), xs, diag=jnp.exp(2 * params.log_noise),
                                  mean=params.mean)


def standardize_targets(y: Array, mask: Array) -> Array:
    """(n,) targets standardised with the observed rows' mean and std (masked rows: 0)."""
    y_mean, y_std = _target_stats(jnp.asarray(y), jnp.asarray(mask, bool))
    return jnp.where(mask, (jnp.where(mask, y, 0.0) - y_mean) / y_std, 0.0)


# ---------------------------------------------------------------------------------------------
# fitting


def default_params(d: int, dtype=jnp.float32) -> GPParams:
    """Mean 0, amplitude 1, log length scales at the prior's location sqrt(2) + log(d)/2
    (length scales ~4.1 sqrt(d)), noise std 0.1 (standardised units)."""
    return GPParams(
        jnp.zeros((), dtype),
        jnp.zeros((), dtype),
        jnp.full((d,), np.sqrt(2) + 0.5 * np.log(d), dtype),
        jnp.full((), np.log(0.1), dtype),
    )


def _squash(raw, lo, hi):
    """Unconstrained -> log value in [log lo, log hi] (logistic)."""
    a, b = np.log(lo), np.log(hi)
    return a + (b - a) * jax.nn.sigmoid(raw)


def _unsquash(value, lo, hi):
    a, b = np.log(lo), np.log(hi)
    p = jnp.clip((value - a) / (b - a), 1e-4, 1 - 1e-4)
    return jnp.log(p) - jnp.log1p(-p)


def _per_bound(params: GPParams, bounds: Bounds, fn) -> GPParams:
    """``fn(value, lo, hi)`` applied to every bounded hyper-parameter (the mean is free)."""
    return GPParams(params.mean, fn(params.log_amplitude, *bounds.amplitude),
                    fn(params.log_lengthscale, *bounds.lengthscale),
                    fn(params.log_noise, *bounds.noise))


def _to_params(raw: GPParams, bounds: Bounds) -> GPParams:
    return _per_bound(raw, bounds, _squash)


def _to_raw(params: GPParams, bounds: Bounds) -> GPParams:
    return _per_bound(params, bounds, _unsquash)


def log_prior(params: GPParams) -> Array:
    """Dimension-scaled log-normal prior on the length scales (up to a constant)."""
    d = params.log_lengthscale.shape[-1]
    loc = np.sqrt(2) + 0.5 * np.log(d)
    z = (params.log_lengthscale - loc) / np.sqrt(3)
    return -0.5 * jnp.sum(jnp.square(z)) - jnp.sum(params.log_lengthscale)


def _initial_points(key, start: GPParams, restarts: int) -> GPParams:
    """(restarts, ...) starting points: ``start`` first, then random perturbations of it."""
    d = start.log_lengthscale.shape[0]
    ks = jax.random.split(key, 3)
    r = restarts - 1
    dt = start.log_lengthscale.dtype
    jitter = GPParams(
        jnp.zeros((r,), dt),
        0.5 * jax.random.normal(ks[0], (r,), dt),
        np.sqrt(3) * 0.5 * jax.random.normal(ks[1], (r, d), dt),
        jax.random.uniform(ks[2], (r,), dt, np.log(0.01), np.log(0.5)) - start.log_noise,
    )
    return jax.tree.map(
        lambda s, j: jnp.concatenate([s[None], s[None] + j]), start, jitter
    )


def fit_hyperparameters(
    x: Array,
    y: Array,
    mask: Array,
    key: Array,
    *,
    restarts: int | None = None,
    steps: int | Array | None = None,
    config: FitConfig = FitConfig(),
    init: GPParams | None = None,
    x_scaler: Standardizer | None = None,
) -> GPParams:
    """Maximum (penalised) marginal likelihood hyper-parameters for x (n, d), y (n,), mask (n,).

    ``restarts`` starting points (``init`` or ``default_params``, plus random perturbations of
    it) are optimised at once with Adam for ``steps`` steps (vmapped); the one with the highest
    objective is returned. ``restarts`` and ``steps`` default to ``config``'s. Pure and
    jittable: ``restarts`` is static, ``steps`` may be traced (one compiled program serves any
    number of steps).
    """
    restarts = config.restarts if restarts is None else restarts
    steps = config.steps if steps is None else steps
    x = jnp.asarray(x)
    mask = jnp.asarray(mask, bool)
    if x_scaler is None:
        x_scaler = fit_standardizer(x, mask)
    start = default_params(x.shape[1], x.dtype) if init is None else init
    starts = _initial_points(key, start, restarts) if restarts > 1 else jax.tree.map(
        lambda s: s[None], start)

    def objective(raw):
        p = _to_params(raw, config.bounds)
        value = log_marginal_likelihood(p, x, y, mask, x_scaler)
        if config.lengthscale_prior:
            value = value + log_prior(p)
        return -value

    opt = optax.adam(config.learning_rate)

    def run(raw0):
        def step(_, carry):
            raw, state = carry
            grad = jax.grad(objective)(raw)
            grad = jax.tree.map(lambda g: jnp.where(jnp.isfinite(g), g, 0.0), grad)
            updates, state = opt.update(grad, state, raw)
            return optax.apply_updates(raw, updates), state

        raw, _ = jax.lax.fori_loop(0, steps, step, (raw0, opt.init(raw0)))
        return raw, objective(raw)

    raws, losses = jax.vmap(run)(jax.vmap(lambda p: _to_raw(p, config.bounds))(starts))
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    best = jnp.argmin(losses)
    return _to_params(jax.tree.map(lambda r: r[best], raws), config.bounds)
