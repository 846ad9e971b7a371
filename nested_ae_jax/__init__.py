"""nested_ae_jax: nested supervised autoencoders (NestedAE) for multi-scale materials property
prediction, in JAX.

Where things live:
    config      TOML -> frozen dataclasses (every key documented)
    data        CSV columns by name -> arrays; categories; scalers
    splits      cross-validation folds (k-fold, grouped, stratified)
    model       one scale's encoder + heads: pure init/apply over parameter pytrees
    losses      per-row losses, masked means, weight penalties
    training    compiled training of many models at once (vmap over models, scan over epochs)
    evaluation  honest per-sample metrics, per fold and pooled out-of-fold
    nesting     the nesting combinator: scales composed into one differentiable chain
    runner      fit a config scale by scale
    rundir      run directories; checkpoint       orbax checkpoints
    predict     trained run -> predictions on new rows
    sweep       hyper-parameter grids in few compiled calls; parallel  models over devices
    finetune    optional joint end-to-end training of a chain
    design      gradient-based inverse design; composition  ions -> descriptors
    explain     latent activity, correlations, Shapley values, latent-size scan; shapley
    synthetic   nested synthetic data with known intrinsic dimensions; demo  the default job
    plots, io   figures; crash-safe file output
    cli         the ``nested-ae`` command
"""

from .config import Config, load_config, parse_config
from .errors import ConfigError, DataError, NestedAEError, RunDirError

_LAZY = {"ScaleModel": "model", "scale_model": "model", "Chain": "nesting", "nest": "nesting",
         "fit_config": "runner"}


def __getattr__(name: str):
    """JAX-backed names are imported on first use, so the CLI starts (and reports config
    errors) without loading JAX."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Chain", "Config", "ConfigError", "DataError", "NestedAEError", "RunDirError",
           "ScaleModel", "fit_config", "load_config", "nest", "parse_config", "scale_model"]
__version__ = "0.1.0"
