"""Closed-loop Bayesian optimisation over a pool of candidates (issue 15, the core).

Pure functions of arrays, independent of the rest of nested_ae_jax (except ``errors``):

    gp           GP surrogate (tinygp Matern-5/2 ARD kernel, masked rows, marginal likelihood)
    acquisition  EI / log EI, UCB, Thompson sampling; batches (kriging believer, q draws)
"""

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
from .gp import (
    Bounds,
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
    posterior_sample,
    prior_cholesky,
    standardize,
    standardize_targets,
)

__all__ = [
    "expected_improvement", "kriging_believer", "log_expected_improvement", "mask_scores",
    "select_sequential", "select_top", "thompson", "upper_confidence_bound",
    "Bounds", "FitConfig", "GPParams", "Matern52ARD", "Standardizer", "as_tinygp",
    "cholesky_and_inverse", "default_params", "fit_hyperparameters", "fit_standardizer",
    "log_marginal_likelihood", "posterior", "posterior_sample", "prior_cholesky", "standardize",
    "standardize_targets",
]
