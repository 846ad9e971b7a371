"""Closed-loop Bayesian optimisation over a pool of candidates (issue 15).

The engine: pure functions of arrays, independent of the rest of nested_ae_jax (except
``errors`` and, for ``report``, ``io``):

    gp           GP surrogate (tinygp Matern-5/2 ARD kernel, masked rows, marginal likelihood)
    linalg       the GP's Cholesky factor and inverse in XLA; Gaussian log density
    acquisition  EI / log EI, UCB, Thompson sampling; batches (kriging believer, q draws)
    methods      what a campaign optimises (Objective, utility) and how it picks (Method)
    engine       the compiled campaign engine: one round, one phase (vmap over trials,
                 while_loop over rounds), the GP refit program
    campaign     the host-side scheduler: run_campaign (buffer phases, refit schedule,
                 relearned features, dropping finished trials); pools from a table
    ensemble     an anchored deep ensemble of small MLPs retrained on the revealed rows every
                 round (calibrated spread)
    report       campaign.csv, summary.md and a box plot from campaign results

The glue to trained chains (imported on first use: they load the training stack):

    chain        objectives on heads, candidate pools, latent / raw feature maps, the honest
                 chain of a simulated campaign (no model sees the campaign's target)
    relearn      the latent map retrained per trial on the revealed rows every R rounds
                 (``latent GP (retrained)``; ``run_campaign(relearn=...)``)
    simulation   ``simulate``: simulated campaigns of a config (``nested-ae campaign``)
    suggestions  ``suggest``: the next candidates to measure for a trained run
                 (``nested-ae suggest``), from a pool or from the design variables

Typical use::

    from nested_ae_jax import bo
    pool = bo.merge_pool(frame, inputs, "pce")
    result = bo.run_campaign(bo.gp_method("ei"), pool["pce"], features=features_of(pool),
                             trials=200, init=5, seed=0)
    bo.write_report("out", {"latent GP": result, ...})
"""

from typing import TYPE_CHECKING

from .acquisition import (
    expected_improvement,
    kriging_believer,
    log_expected_improvement,
    mask_scores,
    select_sequential,
    select_top,
    thompson,
    upper_confidence_bound,
)
from .campaign import (
    BufferSurrogate,
    CampaignResult,
    Method,
    Objective,
    Relearn,
    Surrogate,
    buffer_sizes,
    ensemble_method,
    gp_method,
    merge_pool,
    parse_objective,
    random_method,
    run_campaign,
    utility,
)
from .gp import (
    Bounds,
    Factors,
    FitConfig,
    GPParams,
    Matern52ARD,
    Standardizer,
    as_tinygp,
    cholesky_and_inverse,
    default_params,
    fit_hyperparameters,
    fit_standardizer,
    log_marginal_likelihood,
    posterior,
    posterior_at,
    posterior_factors,
    posterior_sample,
    prior_cholesky,
    standardize,
    standardize_targets,
)

from .ensemble import EnsembleConfig, mlp_ensemble
from .report import results_frame, summary_table, write_report

__all__ = [
    "BufferSurrogate", "CampaignResult", "EnsembleConfig", "Method", "mlp_ensemble", "Objective", "Relearn", "Surrogate", "buffer_sizes", "ensemble_method",
    "gp_method", "merge_pool", "parse_objective", "random_method", "run_campaign", "utility",
    "results_frame", "summary_table", "write_report",
    "expected_improvement", "kriging_believer", "log_expected_improvement", "mask_scores",
    "select_sequential", "select_top", "thompson", "upper_confidence_bound",
    "Bounds", "Factors", "FitConfig", "GPParams", "Matern52ARD", "Standardizer", "as_tinygp",
    "cholesky_and_inverse", "default_params", "fit_hyperparameters", "fit_standardizer",
    "log_marginal_likelihood", "posterior", "posterior_at", "posterior_factors",
    "posterior_sample", "prior_cholesky", "standardize",
    "standardize_targets",
]

_LAZY = {"simulate": "simulation", "Simulation": "simulation", "suggest": "suggestions"}

if TYPE_CHECKING:  # the lazy names, spelled out for type checkers and the API reference
    from .simulation import Simulation, simulate
    from .suggestions import suggest


def __getattr__(name: str):
    """``simulate``, ``Simulation`` and ``suggest`` are imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
