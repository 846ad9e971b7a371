"""Closed-loop Bayesian optimisation over a pool of candidates (issue 15, the core).

Pure functions of arrays, independent of the rest of nested_ae_jax (except ``errors``):

    gp           GP surrogate (tinygp Matern-5/2 ARD kernel, masked rows, marginal likelihood)
"""

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
    "Bounds", "FitConfig", "GPParams", "Matern52ARD", "Standardizer", "as_tinygp",
    "cholesky_and_inverse", "default_params", "fit_hyperparameters", "fit_standardizer",
    "log_marginal_likelihood", "posterior", "posterior_sample", "prior_cholesky", "standardize",
    "standardize_targets",
]
