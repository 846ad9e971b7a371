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

from . import links
from .chain import TrainedChain, finetuned_scales
from .config import Config, ScaleSpec, load_config, override, resolve_data_path
from .data import ScaleData, load_scale_data
from .errors import NestedAEError
from .evaluation import ensemble_summary, scale_metrics
from .fitting import ModelsFit, fit_input_stats, fit_models, own_inputs, replica_layout
from .model import ScaleOutputs, scale_dims, scale_model
from .nesting import row_columns
from .splits import Folds, make_folds
from .store import resolved_config
from .trained import TrainedScale, copy_indices, feed_latents, feeding_index
from .memory import check_memory
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


def feeds_downstream(cfg: Config, name: str) -> bool:
    return any(name in s.upstream for s in cfg.scales)


@dataclass
class ChainPlan:
    """What is decided about a config's rows before any training: every scale's own data,
    the entity of each row (shared by linked scales, see ``links``) and the matched fold of
    each row of the scales that share folds (chain.split = matched)."""

    data: dict[str, ScaleData]
    entities: dict[str, np.ndarray]
    fold_ids: dict[str, np.ndarray]


def plan_chain(cfg: Config, *, data_root: str | None = None,
               frames: dict[str, pd.DataFrame] | None = None,
               fold_ids: dict[str, np.ndarray] | None = None) -> ChainPlan:
    """Read every scale's data file, link the rows of linked scales, deal matched folds.
    fold_ids: {SCALE: (N,) fold of each row} imposed instead (e.g. a baseline scored on the
    chain's folds)."""
    data = {s.name: scale_frame(cfg, s, data_root=data_root, frames=frames) for s in cfg.scales}
    entities = links.link_entities(cfg, data) if links.linked_scales(cfg) else {}
    return ChainPlan(data, entities, {**links.matched_folds(cfg, entities), **(fold_ids or {})})


def scale_folds(cfg: Config, spec: ScaleSpec, plan: ChainPlan) -> Folds:
    """A scale's folds: the matched ones, else from its own cv settings (with an all-rows
    model when it feeds downstream scales with chain.feed = all_rows)."""
    if spec.name in plan.fold_ids:
        return Folds.from_fold_ids(plan.fold_ids[spec.name], spec.cv.n_splits)
    with_full = cfg.chain.feed == "all_rows" and spec.cv.kind != "none" \
        and feeds_downstream(cfg, spec.name)
    return make_folds(spec, plan.data[spec.name],
                      row_columns(cfg.specs, spec.name), with_full)


def scale_feeders(cfg: Config, spec: ScaleSpec, trained: dict[str, TrainedScale],
                  n_folds: int) -> dict[str, np.ndarray]:
    """{UPSTREAM: (F, K)}: the upstream models whose (averaged) latent feeds each of the F
    fold models: fold k's own upstream model with matched folds, else
    ``trained.feeding_index`` for every fold."""
    out = {}
    for up in spec.upstream:
        if links.matched(cfg, spec.name) and links.matched(cfg, up):
            out[up] = np.arange(n_folds)[:, None]  # member 0 of fold k sits at position k
        else:
            index = feeding_index(cfg.chain, trained[up])
            out[up] = np.broadcast_to(index, (n_folds, len(index))).copy()
    return out


def prepare_scale(cfg: Config, spec: ScaleSpec, trained: dict[str, TrainedScale],
                  plan: ChainPlan) -> tuple[ScaleData, Folds, dict[str, np.ndarray]]:
    """A scale's data with its latent inputs computed by the trained upstream scales, its
    folds and the feeders of each fold's models {UPSTREAM: (F, K)} (latent groups are
    (N, L), or (F, N, L) when folds are fed by different upstream models)."""
    data, folds = plan.data[spec.name], scale_folds(cfg, spec, plan)
    feeders = scale_feeders(cfg, spec, trained, folds.n_models)
    specs = cfg.specs
    latents = {g.name: feed_latents(trained, specs, cfg.chain, g, data.frame, data.source,
                                    feeders[g.scale])
               for g in spec.inputs if g.kind == "latent"}
    return data.with_inputs(**latents), folds, feeders


def chain_report(cfg: Config, trained: dict[str, TrainedScale], plan: ChainPlan) -> dict:
    """metrics.json's "chain": the split mode and, per downstream scale, how many validation
    rows got their latent from an upstream model that trained on a row of the same entity."""
    if not plan.entities:
        return {}
    report = {"split": cfg.chain.split, "scales": {}}
    n_entities = int(max(e.max() for e in plan.entities.values())) + 1
    for name, scale in trained.items():
        if not scale.feeders:
            continue
        models = np.arange(scale.n_models)
        val = Folds.from_fold_ids(scale.fold_of_row, scale.n_cv, scale.has_full).val \
            if scale.spec.cv.kind != "none" else np.zeros((1, len(scale.fold_of_row)))
        val = np.tile(val, (scale.members, 1))
        feeders = []
        for up, positions in copy_indices(trained, name, models).items():
            if up != name:
                train = np.tile(_train_masks(trained[up]), (trained[up].members, 1))
                feeders.append((positions, links.trained_entities(train, plan.entities[up],
                                                                  n_entities)))
        report["scales"][name] = {
            "val_rows": int((val.sum(axis=0) > 0).sum()),
            "leaky_val_rows": links.leaky_rows(plan.entities[name], val, feeders)}
    return report


def _train_masks(scale: TrainedScale) -> np.ndarray:
    """(F [+1], N) training masks of one member's models."""
    if scale.spec.cv.kind == "none":
        return np.ones((1, len(scale.fold_of_row)))
    return Folds.from_fold_ids(scale.fold_of_row, scale.n_cv, scale.has_full).train


def fit_config(cfg: Config, *, data_root: str | None = None, progress: Progress | None = None,
               frames: dict[str, pd.DataFrame] | None = None,
               on_chunk: ScaleCallback | None = None,
               resume: dict[str, tuple[TrainState, dict]] | None = None,
               stop_before: str | None = None,
               fold_ids: dict[str, np.ndarray] | None = None) -> TrainedChain:
    """Train every scale of ``cfg`` in order (each frozen before the next starts).

    frames: data given in memory per scale name instead of reading the config's files.
    fold_ids: {SCALE: (N,) fold of each row} imposed on those scales (see plan_chain).
    on_chunk: see :func:`fit_scale`. resume: {SCALE: (state, history)} checkpointed earlier.
    stop_before: train only the scales before this one (exactly as in the whole chain, e.g.
    with the all-rows model that feeds it).
    """
    start = time.perf_counter()
    plan = plan_chain(cfg, data_root=data_root, frames=frames, fold_ids=fold_ids)
    check_memory(cfg, plan.data, {s.name: scale_folds(cfg, s, plan).n_models
                                  * s.training.ensemble for s in cfg.scales})
    results: dict[str, ScaleResult] = {}
    for spec in cfg.scales:
        if spec.name == stop_before:
            break
        data, folds, feeders = prepare_scale(cfg, spec, {n: r.trained for n, r in
                                                         results.items()}, plan)
        if progress:
            cv = "matched" if spec.name in plan.fold_ids else spec.cv.kind
            progress(f"scale '{spec.name}': {data.n_rows} rows, {cv} cv, "
                     f"{spec.training.epochs} epochs")
        results[spec.name] = fit_scale(spec, data, folds, feeders=feeders, progress=progress,
                                       on_chunk=on_chunk,
                                       resume=(resume or {}).get(spec.name))
    finetuned = None
    if cfg.chain.finetune_epochs and len(cfg.scales) > 1 and stop_before is None:
        from .finetune import finetune_chain
        if progress:
            progress(f"joint fine-tuning of the chain: {cfg.chain.finetune_epochs} epochs")
        finetuned = finetune_chain(cfg, results, progress)
    trained = {n: r.trained for n, r in results.items()}
    report = chain_report(cfg, trained, plan)
    if finetuned:
        trained = finetuned_scales(trained, finetuned.params)
    return TrainedChain(cfg, trained, None, "finetuned" if finetuned else "sequential", results,
                        finetuned, report, time.perf_counter() - start)


def fit(config: Config | str | Path, *, data_root: str | None = None,
        overrides: dict | None = None, progress: Progress | None = None) -> TrainedChain:
    """Train a config (a TOML path or a :class:`Config`) into a :class:`TrainedChain`.

    overrides: {"SCALE.KEY": value} as ``nested-ae train --set``; data_root: folder for
    relative data paths (else $NESTED_AE_DATA, else the config's folder). Data paths are made
    absolute first, so the chain saves (``chain.save``) and reloads anywhere."""
    cfg = config if isinstance(config, Config) else load_config(config)
    cfg = override(cfg, dict(overrides)) if overrides else cfg
    return fit_config(resolved_config(cfg, data_root), data_root=data_root, progress=progress)
