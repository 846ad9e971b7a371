"""Fit a config: data -> folds -> upstream latents -> compiled training -> honest metrics,
scale by scale.

This is the orchestrator above the pure pieces (``data``, ``splits``, ``fitting``,
``evaluation``, ``trained``). Scales are trained in config order; a scale that takes another
scale's latent gets it from the frozen upstream models chosen by ``trained.feeding_index``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import pandas as pd

from .config import Config, ScaleSpec, resolve_data_path
from .data import ScaleData, input_group_columns, load_scale_data
from .errors import NestedAEError
from .evaluation import ensemble_summary, scale_metrics
from .fitting import ModelsFit, fit_input_stats, fit_models, own_inputs, replica_layout
from .model import ScaleOutputs, scale_dims, scale_model
from .nesting import upstream_columns
from .splits import Folds, make_folds
from .trained import TrainedScale, feed_latents, feeding_index
from .training import NonFiniteLoss, TrainState, selected_params

Progress = Callable[[str], None]
ScaleCallback = Callable[[TrainedScale, TrainState, dict, int], None]


@dataclass
class ScaleResult:
    """Everything a trained scale leaves behind: the :class:`TrainedScale` (what predictions
    use), its data and folds, the training batch, state and history (leading model axis:
    training.ensemble members x folds, member-major), and per-fold outputs and metrics (the
    mean over members; ``outputs_std``: their spread per head when there are several)."""

    trained: TrainedScale
    data: ScaleData
    folds: Folds
    fit: ModelsFit
    outputs: ScaleOutputs
    metrics: dict
    seconds: float
    outputs_std: dict | None = None

    spec = property(lambda self: self.trained.spec)
    model = property(lambda self: self.trained.model)
    dims = property(lambda self: self.trained.model.dims)
    params = property(lambda self: self.trained.params)
    stats = property(lambda self: self.trained.stats)
    batch = property(lambda self: self.fit.batch)
    state = property(lambda self: self.fit.state)
    history = property(lambda self: self.fit.history)
    n_cv = property(lambda self: self.folds.n_cv)
    has_full = property(lambda self: self.folds.has_full)


@dataclass
class FitResult:
    """A trained config: one ScaleResult per scale, in order."""

    config: Config
    scales: dict[str, ScaleResult]
    seconds: float = 0.0
    finetuned: object = None  # chain.finetune_epochs > 0: a finetune.Finetuned

    @property
    def trained(self) -> dict[str, TrainedScale]:
        return {n: r.trained for n, r in self.scales.items()}


def trained_record(spec: ScaleSpec, data: ScaleData, folds: Folds,
                   feeders: dict[str, np.ndarray], params, stats) -> TrainedScale:
    """The TrainedScale of a scale's models (``params``, ``stats``: leading model axis M =
    members x folds; ``feeders``: {UPSTREAM: (F, K)} per fold)."""
    members = spec.training.ensemble
    return TrainedScale(scale_model(spec, scale_dims(spec, data)), data.categories, params,
                        stats, folds.fold_of_row, folds.n_cv, folds.has_full,
                        {k: np.tile(v, (members, 1)) for k, v in feeders.items()})


def fit_scale(spec: ScaleSpec, data: ScaleData, folds: Folds, *,
              feeders: dict[str, np.ndarray] | None = None, progress: Progress | None = None,
              on_chunk: ScaleCallback | None = None,
              resume: tuple[TrainState, dict] | None = None) -> ScaleResult:
    """Cross-validate one scale: train every ensemble member on every fold in one compiled
    call, evaluate every fold and the pooled out-of-fold predictions.

    data: the scale's rows with latent groups filled in. feeders: {UPSTREAM: (F, K)} upstream
    models that fed each fold's models (stored with the result, tiled over members). on_chunk(trained_so_far, state,
    history, epochs_done): after every compiled chunk (checkpoints). resume: (state, history).
    """
    start = time.perf_counter()
    feeders = feeders or {}
    layout = replica_layout(spec, folds)
    stats = fit_input_stats(spec, data, layout.stat_rows, own_inputs(data, layout.n_models))

    def checkpoint(state, history, done, seconds):
        on_chunk(trained_record(spec, data, folds, feeders, selected_params(spec, state),
                                stats), state, history, done)
    try:
        fit = fit_models(spec, data, layout, stats=stats, resume=resume,
                         on_chunk=checkpoint if on_chunk else None,
                         progress=progress)
    except NonFiniteLoss as err:
        fold = int(layout.fold[err.model])
        raise NestedAEError(f"scale '{spec.name}' fold {fold}: non-finite training loss at "
                            f"epoch {err.epoch} (head '{err.head}'); lower "
                            f"scales.{spec.name}.training.learning_rate or check the data"
                            ) from None
    outputs, outputs_std = fit.outputs, None
    members = spec.training.ensemble
    if members > 1:  # (members * F, ...) -> (members, F, ...) -> mean over members
        by_member = jax.tree.map(
            lambda a: a.reshape(members, a.shape[0] // members, *a.shape[1:]), outputs)
        outputs, outputs_std = ensemble_summary(spec, by_member)
    model_of_row = folds.fold_of_row if spec.cv.kind != "none" else None
    metrics = scale_metrics(spec, outputs, data.targets, folds.train, folds.val, model_of_row,
                            folds.n_cv)
    return ScaleResult(trained_record(spec, data, folds, feeders, fit.params, fit.batch.stats),
                       data, folds, fit,
                       outputs, metrics, time.perf_counter() - start, outputs_std)


def scale_frame(cfg: Config, spec: ScaleSpec, *, data_root: str | None = None,
                frames: dict[str, pd.DataFrame] | None = None) -> ScaleData:
    """A scale's own columns, read from its data file (or ``frames[name]``, given in memory)."""
    config_dir = str(Path(cfg.source).parent) if cfg.source and cfg.source != "<config>" else None
    frame = (frames or {}).get(spec.name)
    path = resolve_data_path(spec.data, config_dir, data_root) if frame is None \
        else Path(f"<{spec.name} data>")
    return load_scale_data(spec, path, frame=frame)


def row_columns(cfg: Config, spec: ScaleSpec) -> list[str]:
    """The raw columns of a scale's file that make up one encoder input row: its own input
    columns and those its upstream scales read (identical rows are grouped by cv = group)."""
    cols = input_group_columns(spec)
    for g in spec.inputs:
        if g.kind == "latent":
            cols += upstream_columns(cfg.scale(g.scale), g)
    return cols


def feeds_downstream(cfg: Config, name: str) -> bool:
    return any(name in s.upstream for s in cfg.scales)


def prepare_scale(cfg: Config, spec: ScaleSpec, trained: dict[str, TrainedScale], *,
                  data_root: str | None = None, frames: dict[str, pd.DataFrame] | None = None,
                  folds: Folds | None = None
                  ) -> tuple[ScaleData, Folds, dict[str, np.ndarray]]:
    """A scale's data with its latent inputs computed by the trained upstream scales, its
    folds (default: from its cv settings; an all-rows model is added when it feeds downstream
    scales with chain.feed = all_rows) and the feeders of each fold's models {UPSTREAM:
    (F, K)} (latent groups are (N, L), or (F, N, L) when folds are fed differently)."""
    data = scale_frame(cfg, spec, data_root=data_root, frames=frames)
    if folds is None:
        with_full = cfg.chain.feed == "all_rows" and spec.cv.kind != "none" \
            and feeds_downstream(cfg, spec.name)
        folds = make_folds(spec, data, row_columns(cfg, spec), with_full)
    n_models = folds.n_models
    specs = {s.name: s for s in cfg.scales}
    feeders, latents = {}, {}
    for g in spec.inputs:
        if g.kind == "latent":
            index = feeding_index(cfg.chain, trained[g.scale])
            feeders[g.scale] = np.broadcast_to(index, (n_models, len(index))).copy()
            latents[g.name] = feed_latents(trained, specs, cfg.chain, g, data.frame,
                                           data.source, feeders[g.scale])
    return data.with_inputs(**latents), folds, feeders


def fit_config(cfg: Config, *, data_root: str | None = None, progress: Progress | None = None,
               frames: dict[str, pd.DataFrame] | None = None,
               on_chunk: ScaleCallback | None = None,
               resume: dict[str, tuple[TrainState, dict]] | None = None,
               stop_before: str | None = None) -> FitResult:
    """Train every scale of ``cfg`` in order (each frozen before the next starts).

    frames: data given in memory per scale name instead of reading the config's files.
    on_chunk: see :func:`fit_scale`. resume: {SCALE: (state, history)} checkpointed earlier.
    stop_before: train only the scales before this one (exactly as in the whole chain, e.g.
    with the all-rows model that feeds it).
    """
    start = time.perf_counter()
    results: dict[str, ScaleResult] = {}
    for spec in cfg.scales:
        if spec.name == stop_before:
            break
        data, folds, feeders = prepare_scale(cfg, spec, {n: r.trained for n, r in
                                                         results.items()},
                                             data_root=data_root, frames=frames)
        if progress:
            progress(f"scale '{spec.name}': {data.n_rows} rows, "
                     f"{spec.cv.kind} cv, {spec.training.epochs} epochs")
        results[spec.name] = fit_scale(spec, data, folds, feeders=feeders, progress=progress,
                                       on_chunk=on_chunk,
                                       resume=(resume or {}).get(spec.name))
    finetuned = None
    if cfg.chain.finetune_epochs and len(cfg.scales) > 1 and stop_before is None:
        from .finetune import finetune_chain
        if progress:
            progress(f"joint fine-tuning of the chain: {cfg.chain.finetune_epochs} epochs")
        finetuned = finetune_chain(cfg, results, progress)
    return FitResult(cfg, results, time.perf_counter() - start, finetuned)
