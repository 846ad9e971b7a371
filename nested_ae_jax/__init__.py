"""nested_ae_jax: nested supervised autoencoders (NestedAE) for multi-scale materials property
prediction, in JAX.

From Python: ``chain = nested_ae_jax.fit(config, overrides=...)`` or
``nested_ae_jax.load(run_dir)`` give a :class:`TrainedChain` (``predict``, ``inputs``,
``head_fn``, ``params``/``apply``, ``save``, ``metrics``).

One pipeline, bottom to top (each module imports only modules above it in this list):

    config/     TOML -> frozen dataclasses (every key documented, validated once): schema,
                parse, validate, modules, paths, overrides, reference
    datasets    the paper's data sets, shipped with the package ("dataset:NAME")
    data        CSV columns by name -> ScaleData arrays; categories; scalers (fit_stats)
    splits      Folds: cross-validation fold assignment (k-fold, grouped, stratified)
    modules     the networks inside a scale as Flax modules, each a pure init/apply pair: the
                built-in DenseNet (linen) and user linen/nnx modules ("file.py:factory")
    model       one scale's encoder + heads: ScaleModel, a pure init/apply pair over their
                Flax variables; ScaleOutputs
    losses      per-row losses, masked means, weight penalties
    evaluation  honest per-sample metrics, per fold and pooled out-of-fold
    training    THE compiled training loop: a Task (loss, evaluation) over a ModelBatch,
                vmap over models, scan over epochs and mini-batches
    history     what a run records: Losses of one evaluation, the History of a fit
    fitting     fit_models: every replica (seed x hyper-parameters x mask) of one scale on
                every fold in one compiled call -- the only place scales are trained
    nesting     the nesting combinator: nest(models) -> one differentiable chain; raw columns
    trained     TrainedScale and the one trained-chain path: which model feeds which,
                chain copies, predictions averaged over models
    links       which rows of linked scales are the same entity; matched folds
    memory      the estimate of a fit's memory against the machine's, before training
    store       run directories: save and load trained scales (orbax checkpoints)
    chain       TrainedChain, the one record of a trained chain (training and loading):
                predict, inputs, head_fn, params/apply, save; load(run_dir, stage=...)
    runner      fit / fit_config: plan the chain, then data -> folds -> latents -> fit,
                scale by scale -> a TrainedChain
    finetune    optional joint end-to-end training of the chain (a Task on the same loop)
    reports     out-of-fold and history tables, figures, metrics.json
    predict     a trained run on new rows
    sweep       hyper-parameter grids in few compiled calls; parallel: models over devices
    tune        settings chosen by nested CV: Sobol spaces, successive halving (package)
    compare     NestedAE vs single autoencoders vs scikit-learn on identical folds (package)
    design      gradient-based inverse design through a trained chain (package)
    bo          closed-loop Bayesian optimisation (package): GP, acquisition functions and
                simulated campaigns as pure array functions, then the glue to trained chains
                (feature maps, the honest chain of a simulation, suggestions)
    explain     latent activity, correlations, Shapley values, latent-size scan (package)
    cli         the ``nested-ae`` command: one module per command (package)
    composition, shapley, synthetic, demo, plots, io, checkpoint: helpers named for their job
"""

from typing import TYPE_CHECKING

from .config import Config, load_config, parse_config
from .errors import ConfigError, DataError, NestedAEError, RunDirError

if TYPE_CHECKING:  # the lazy names below, spelled out for type checkers and the API reference
    from .chain import TrainedChain, load
    from .model import ScaleModel, scale_model
    from .nesting import Chain, nest
    from .runner import fit, fit_config

_LAZY = {"ScaleModel": "model", "scale_model": "model", "Chain": "nesting", "nest": "nesting",
         "fit_config": "runner", "fit": "runner", "load": "chain", "TrainedChain": "chain"}


def __getattr__(name: str):
    """JAX-backed names are imported on first use, so the CLI starts (and reports config
    errors) without loading JAX."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Chain", "Config", "ConfigError", "DataError", "NestedAEError", "RunDirError",
           "ScaleModel", "TrainedChain", "fit", "fit_config", "load", "load_config", "nest",
           "parse_config", "scale_model"]
__version__ = "0.1.0"
