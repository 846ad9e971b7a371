"""A deep-ensemble surrogate retrained on the revealed rows every round (the ``ensemble``
method of simulated campaigns), as pure JAX: an *anchored* ensemble (randomised MAP sampling,
Pearce et al. 2020), whose members are approximate posterior draws of a Bayesian MLP.

``mlp_ensemble(features)`` returns a :class:`~.campaign.BufferSurrogate`: each call trains
``members`` small MLPs (d -> hidden -> 1, ReLU) on the revealed rows of the buffer (targets
standardised with the revealed rows' mean and spread) and predicts every candidate: the
members' mean, and the spread ``sqrt(var over members + noise^2)`` (original units). Member m
starts at its own draw ``theta_m`` from the weight prior and minimises

    sum_i (f(x_i) - y_i - noise * e_mi)^2 / noise^2 + |(theta - theta_m) / prior_sd|^2

(full-batch Adam, ``steps`` steps; ``e_mi ~ N(0, 1)`` fixed per member and buffer slot): far
from the revealed rows a member keeps its prior function, so the members disagree there by
the prior's spread; near them they agree to within the noise.

Diagnosis (issue 21) of the plain ensemble it replaces (members from scratch, L2 to zero,
50 Adam steps, no bias prior, spread = members' std only). On a 240-candidate smooth pool
(4 features, 20 revealed rows; ``tests/test_bo_ensemble.py``'s kind) it predicted held-out
rows *worse than their mean* (RMSE 1.16 target sd) and its 68 % interval covered 23 % of
them; campaigns with UCB needed 70 % of the pool (random: 51 %), with EI 25 % (GP: 10 %).
Causes: (1) the spread came only from where the members started, and 50 steps of a
penalty towards zero pulled every member to nearly the same function, so it was far too
narrow away from the data, and UCB / EI trusted extrapolations; (2) with zero hidden biases
every ReLU hinge passes through the pool's centre, so the initial functions are nearly linear
and extrapolate linearly to the pool's edges, where UCB then kept picking; (3) no noise term,
so even at the revealed rows the interval was the members' (tiny) disagreement. The anchored
ensemble fixes all three: a prior with random hidden biases (hinges spread over the pool),
members anchored to their prior draws (the spread stays where no row is revealed), a noise
term in the loss and in the spread.

Nothing is carried from one round to the next, so a round's prediction depends only on which
rows are revealed and their targets. Costs scale with the buffer (B rows) for training and
with the pool (P rows) only for the one prediction per round.

Shapes: P candidates, d features, B buffer rows, M members.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import gp as gplib
from .campaign import BufferSurrogate

Array = jax.Array


class EnsembleConfig(NamedTuple):
    """members: MLPs (seeds seed, seed + 1, ...); hidden: units of the one hidden layer;
    steps: full-batch Adam steps per round; learning_rate: Adam's; noise: the observation
    noise sd, in standardised target units (the loss's scale and part of the spread);
    prior_sd: the prior sd of the network's output (standardised units), which sets the
    spread far from the revealed rows; length: the prior's input length scale (in pool sds:
    larger, smoother functions)."""

    members: int = 8
    hidden: int = 32
    steps: int = 100
    learning_rate: float = 0.05
    noise: float = 0.2
    prior_sd: float = 1.0
    length: float = 1.0
    seed: int = 0


def prior_sds(d: int, config: EnsembleConfig) -> dict:
    """Prior sd of every weight: w1 ~ N(0, 1 / (d length^2)) and b1 ~ N(0, 1) (on
    standardised inputs: pre-activations of variance v = 1 + 1 / length^2, hinges spread over
    the pool), w2 ~ N(0, 2 prior_sd^2 / (hidden v)) and b2 ~ N(0, prior_sd^2 / 4): an output
    of prior sd ~ prior_sd."""
    v = 1.0 + 1.0 / config.length**2
    return {"w1": jnp.full((d, config.hidden), 1.0 / (np.sqrt(d) * config.length)),
            "b1": jnp.ones(config.hidden),
            "w2": jnp.full((config.hidden,), config.prior_sd * np.sqrt(2.0 / (config.hidden * v))),
            "b2": jnp.asarray(config.prior_sd / 2.0)}


def _init(key: Array, sds: dict) -> dict:
    """One draw from the weight prior (the member's anchor and starting point)."""
    keys = dict(zip(sorted(sds), jax.random.split(key, len(sds))))
    return {k: jax.random.normal(keys[k], s.shape) * s for k, s in sds.items()}


def _apply(p: dict, x: Array) -> Array:
    """(n, d) -> (n,)."""
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _last_layer(p: dict, anchor: dict, sds: dict, x: Array, t: Array, w: Array,
                noise: float) -> dict:
    """The exact minimiser of the member's loss over (w2, b2) with (w1, b1) fixed: with
    features phi = [relu(x w1 + b1), 1] (B, H + 1) and theta = anchor + s * delta,
    (s phi' W phi s / noise^2 + I) delta = s phi' W (t - phi anchor) / noise^2."""
    phi = jnp.concatenate([jax.nn.relu(x @ p["w1"] + p["b1"]), jnp.ones((x.shape[0], 1))], 1)
    a = jnp.concatenate([anchor["w2"], anchor["b2"][None]])
    s = jnp.concatenate([sds["w2"], sds["b2"][None]])
    ps = phi * s * jnp.sqrt(w)[:, None] / noise
    lhs = ps.T @ ps + jnp.eye(a.shape[0], dtype=x.dtype)
    rhs = ps.T @ (jnp.sqrt(w) * (t - phi @ a) / noise)
    theta = a + s * jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(lhs), True), rhs)
    return {**p, "w2": theta[:-1], "b2": theta[-1]}


def fit_predict(anchors: dict, eps: Array, x_train: Array, y: Array, mask: Array,
                x_query: Array, config: EnsembleConfig) -> tuple[Array, Array]:
    """Train every member (leading axis M of ``anchors``, its target noise ``eps`` (M, B)) on
    the rows of x_train (B, d), y (B,) where mask (B,) is True; mean and spread at x_query
    (P, d), original units."""
    w = mask.astype(x_train.dtype)
    mu, sd = gplib._target_stats(y, mask)
    yt = jnp.where(mask, (y - mu) / sd, 0.0)
    sds = prior_sds(x_train.shape[1], config)
    opt = optax.adam(config.learning_rate)
    scale = 1.0 / x_train.shape[0]  # loss per buffer slot: Adam's steps do not depend on it

    def loss(p, anchor, t):
        r = _apply(p, x_train) - t
        fit = (w * r * r).sum() / config.noise**2
        prior = sum(jnp.sum(jnp.square((p[k] - anchor[k]) / sds[k])) for k in sds)
        return scale * (fit + prior)

    def train(anchor, e):
        t = yt + config.noise * e
        p = _last_layer(anchor, anchor, sds, x_train, t, w, config.noise)

        def step(_, carry):
            p, state = carry
            updates, state = opt.update(jax.grad(loss)(p, anchor, t), state, p)
            return optax.apply_updates(p, updates), state

        p = jax.lax.fori_loop(0, config.steps, step, (p, opt.init(p)))[0]
        return _last_layer(p, anchor, sds, x_train, t, w, config.noise) if config.steps else p

    trained = jax.vmap(train)(anchors, eps)
    pred = jax.vmap(_apply, (0, None))(trained, x_query)  # (M, P)
    spread = jnp.sqrt(pred.var(0) + config.noise**2)
    return pred.mean(0) * sd + mu, spread * sd


def member_draws(d: int, slots: int, config: EnsembleConfig) -> tuple[dict, Array]:
    """Every member's anchor (a prior draw, leading axis M) and target noise (M, slots)."""
    keys = jax.vmap(lambda m: jax.random.PRNGKey(config.seed + m))(jnp.arange(config.members))
    sds = prior_sds(d, config)
    anchors = jax.vmap(lambda k: _init(jax.random.fold_in(k, 0), sds))(keys)
    eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (slots,)))(keys)
    return anchors, eps


def mlp_ensemble(features, config: EnsembleConfig = EnsembleConfig()) -> BufferSurrogate:
    """The per-round deep-ensemble surrogate over a pool's ``features`` (P, d) (standardised
    here with the pool's statistics: every candidate's inputs are known)."""
    x = np.asarray(features, np.float32)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"features: expected a finite (P, d) array, got shape {x.shape}")
    if config.members < 2 or config.noise <= 0 or config.prior_sd <= 0:
        raise ValueError(f"ensemble: need members >= 2, noise > 0, prior_sd > 0 ({config})")
    xs = gplib.standardize(gplib.fit_standardizer(jnp.asarray(x)), jnp.asarray(x))
    # the noise of buffer slot i is the same in every phase (the buffer grows by appending);
    # a buffer holds at most P + q <= 2P rows
    anchors, eps = member_draws(x.shape[1], 2 * x.shape[0], config)

    def surrogate(index: Array, y: Array, mask: Array) -> tuple[Array, Array]:
        b = index.shape[0]
        e = eps[:, :b] if b <= eps.shape[1] else jnp.pad(eps, ((0, 0), (0, b - eps.shape[1])))
        return fit_predict(anchors, e, xs[index], y, mask, xs, config)

    return BufferSurrogate(surrogate)
