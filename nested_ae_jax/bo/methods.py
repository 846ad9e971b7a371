"""What a simulated campaign optimises and how it picks: the ``Objective`` (max, min or a
target value: :mod:`nested_ae_jax.objectives`, the language every command shares) with its
utility, and the ``Method`` (GP, ensemble or random; acquisition; GP
hyper-parameter fit schedule), checked before anything is compiled."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from ..errors import ConfigError
from ..objectives import Objective, parse_objective, utility  # noqa: F401 (re-exported)
from . import acquisition as acq
from . import gp as gplib

Array = jax.Array


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


def check_method(method: Method) -> None:
    kinds = {"gp": ("ei", "ucb", "ts"), "ensemble": ("ei", "ucb"), "random": ("random",)}
    if method.kind not in kinds:
        raise ConfigError(f"method kind '{method.kind}': use one of {sorted(kinds)}")
    if method.acquisition not in kinds[method.kind]:
        raise ConfigError(f"acquisition '{method.acquisition}' with method '{method.kind}': "
                          f"use one of {list(kinds[method.kind])}")
    if method.refit_growth < 1.0:
        raise ConfigError(f"refit_growth {method.refit_growth}: must be >= 1")


def score(method: Method) -> Callable[[Array, Array, Array], Array]:
    """acquisition(mean, std, best) -> scores for ei / ucb."""
    return acq.score_fn(method.acquisition, method.beta, method.xi)
