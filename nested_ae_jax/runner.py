"""Fit a config: data -> folds -> scalers -> compiled training -> honest metrics, scale by scale.

This is the glue between the pure pieces (model, training, evaluation) and the outside world
(files, progress output). Scales are trained in config order; a scale that takes another
scale's latent gets it computed in-graph by the (frozen) upstream model, see ``nesting``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import splits
from .config import Config, ScaleSpec, resolve_data_path
from .data import (Categories, encode_inputs, encode_targets, fit_scale_categories, fit_stats,
                   input_group_columns, read_table)
from .errors import DataError, NestedAEError
from .evaluation import ensemble_summary, predict_models, scale_metrics
from .model import ScaleDims, ScaleModel, scale_model
from .training import (ModelBatch, NonFiniteLoss, TrainState, hyperparameters,
                       selected_params, train_models)

Progress = Callable[[str], None]


@dataclass
class ScaleData:
    """A scale's rows as arrays. inputs: {GROUP: (N, d) float32 | (N,) int32 codes};
    targets: {HEAD: (N, k) float32 | (N,) int32} for heads that read data columns."""

    frame: pd.DataFrame
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    categories: Categories
    source: str

    @property
    def n_rows(self) -> int:
        return len(self.frame)


@dataclass
class Folds:
    """Row masks of the models trained together: the CV folds, then (has_full) one model on
    all rows. fold_of_row: (N,) validation fold of each row (-1: none, cv.kind = none);
    train/val: (models, N) float32."""

    fold_of_row: np.ndarray
    train: np.ndarray
    val: np.ndarray
    has_full: bool = False

    @property
    def n_models(self) -> int:
        return self.train.shape[0]

    @property
    def n_cv(self) -> int:
        """Models that are cross-validation folds (the first n_cv)."""
        return self.n_models - int(self.has_full)


@dataclass
class ScaleResult:
    """Everything a trained scale leaves behind. params/state/batch have a leading model axis
    (training.ensemble members x folds, member-major); outputs/metrics are per fold (the mean
    over members)."""

    spec: ScaleSpec
    dims: ScaleDims
    data: ScaleData
    folds: Folds
    batch: ModelBatch
    state: TrainState
    history: dict[str, np.ndarray]
    outputs: dict
    metrics: dict
    seconds: float
    outputs_std: dict | None = None  # per head, over ensemble members (training.ensemble > 1)

    @property
    def model(self) -> ScaleModel:
        return scale_model(self.spec, self.dims)

    @property
    def params(self):
        """The parameters evaluated and used for prediction (training.select)."""
        return selected_params(self.spec, self.state)

    @property
    def stats(self) -> dict:
        return self.batch.stats

    @property
    def n_cv(self) -> int:
        return self.folds.n_cv

    @property
    def has_full(self) -> bool:
        return self.folds.has_full


def scale_dims(spec: ScaleSpec, data: ScaleData) -> ScaleDims:
    """Input and head widths read off the encoded data."""
    widths = {}
    for g in spec.inputs:
        x = data.inputs[g.name]
        widths[g.name] = len(data.categories.groups[g.name]) if g.kind == "categorical" \
            else x.shape[1]
    heads = []
    for h in spec.heads:
        if h.kind == "regression":
            heads.append((h.name, len(h.target)))
        elif h.kind == "reconstruction":
            heads.append((h.name, widths[h.input]))
        elif h.input:
            heads.append((h.name, widths[h.input]))
        else:
            heads.append((h.name, len(data.categories.heads[h.name])))
    return ScaleDims(tuple((g.name, widths[g.name]) for g in spec.inputs), tuple(heads))


def load_scale_data(spec: ScaleSpec, path: Path, categories: Categories | None = None,
                    frame: pd.DataFrame | None = None, with_targets: bool = True) -> ScaleData:
    """Read and encode a scale's own columns (latent groups are added by the caller)."""
    source = str(path)
    frame = read_table(path, spec.column_names) if frame is None else frame
    categories = fit_scale_categories(spec, frame, source) if categories is None else categories
    inputs = encode_inputs(spec, frame, categories, source)
    targets = encode_targets(spec, frame, categories, source) if with_targets else {}
    return ScaleData(frame, inputs, targets, categories, source)


def make_folds(spec: ScaleSpec, data: ScaleData, group_columns: list[str],
               with_full: bool = False) -> Folds:
    """Cross-validation masks from the scale's cv settings.

    group_columns: the raw columns that make up an encoder input row (for grouping identical
    input rows when cv.group_by is empty). with_full: add a model trained on all rows (it
    feeds downstream scales when chain.feed = all_rows).
    """
    cv, n = spec.cv, data.n_rows
    if cv.kind == "none":  # one model on every row, reported as a fold without validation
        return Folds(np.full(n, -1, np.int32), np.ones((1, n), np.float32),
                     np.zeros((1, n), np.float32))
    groups = labels = None
    if cv.kind == "group":
        cols = list(cv.group_by) or group_columns
        missing = [c for c in cols if c not in data.frame.columns]
        if missing:
            raise DataError(f"{data.source}: cv.group_by column '{missing[0]}' not found")
        groups = splits.groups_from_rows(data.frame[cols].to_numpy())
    if cv.kind == "stratified":
        col = cv.stratify_on or next(h for h in spec.heads if h.kind == "regression").target[0]
        from .data import numeric_block
        labels = splits.bin_target(numeric_block(data.frame, [col], data.source)[:, 0], cv.bins)
    fold_of_row = splits.assign_folds(n, kind=cv.kind, n_splits=cv.n_splits, shuffle=cv.shuffle,
                                      random_state=cv.random_state, groups=groups, labels=labels)
    train, val = splits.fold_masks(fold_of_row, cv.n_splits)
    if with_full:
        train = np.concatenate([train, np.ones((1, n), bool)])
        val = np.concatenate([val, np.zeros((1, n), bool)])
    return Folds(fold_of_row.astype(np.int32), train.astype(np.float32), val.astype(np.float32),
                 has_full=with_full)


def fit_input_stats(spec: ScaleSpec, data: ScaleData, folds: Folds) -> dict:
    """Standardisation of every numeric/latent group, per model: on its training rows
    (scaler = train) or on all rows (scaler = all, the paper)."""
    masks = folds.train if spec.scaler == "train" else np.ones_like(folds.train)
    return {g.name: fit_stats(data.inputs[g.name], masks, name=g.name, source=data.source,
                              allow_constant=g.kind == "latent")
            for g in spec.inputs if g.kind != "categorical"}


def model_batch(spec: ScaleSpec, folds: Folds, stats: dict,
                replicas: list[tuple[int, dict]] | None = None) -> ModelBatch:
    """The models of one compiled training call: every replica (seed, hyper-parameters) times
    every fold, replica-major (model r * n_folds + f). Default: the config's ensemble, i.e.
    seeds seed, seed+1, ... (one replica: every fold from the config's seed, as in the paper).
    """
    if replicas is None:
        hp = hyperparameters(spec)
        replicas = [(spec.training.seed + j, hp) for j in range(spec.training.ensemble)]
    per = folds.n_models
    hps = [jax.tree.map(lambda v: np.full(per, v, np.float32), hp) for _, hp in replicas]
    tile = lambda a: np.concatenate([np.asarray(a)] * len(replicas))  # noqa: E731
    return ModelBatch(
        jnp.asarray(tile(folds.train)), jnp.asarray(tile(folds.val)),
        jax.tree.map(lambda a: jnp.asarray(tile(a)), stats),
        jnp.asarray(np.repeat([seed for seed, _ in replicas], per), jnp.int32),
        jnp.asarray(np.tile(np.arange(per), len(replicas)), jnp.int32),
        jax.tree.map(lambda *v: jnp.asarray(np.concatenate(v)), *hps))


def progress_printer(scale: str, epochs: int, out: Progress | None) -> Callable | None:
    """A chunk callback that prints one progress line: epochs done, losses, speed."""
    if out is None:
        return None

    def on_chunk(state, history, done, seconds):
        train = np.nanmean(history["train/total"][:, done - 1])
        val = history["val/total"][:, done - 1]
        val_txt = f" val {np.mean(val):.4f}" if np.any(val > 0) else ""
        width = 20
        bar = "#" * int(width * done / epochs) + "." * (width - int(width * done / epochs))
        out(f"  [{scale}] [{bar}] epoch {done}/{epochs}  train {train:.4f}{val_txt}  "
            f"{seconds:.1f}s")

    return on_chunk


ScaleCallback = Callable[["ScaleResult", TrainState, dict, int], None]


def fit_scale(spec: ScaleSpec, data: ScaleData, *, group_columns: list[str] | None = None,
              with_full: bool = False, progress: Progress | None = None,
              on_chunk: ScaleCallback | None = None,
              resume: tuple[TrainState, dict] | None = None) -> ScaleResult:
    """Cross-validate one scale: folds, scalers, train all folds in one compiled call,
    evaluate every fold and the pooled out-of-fold predictions.

    on_chunk(result_so_far, state, history, epochs_done): after every compiled chunk (the
    result's state/outputs/metrics are not filled yet). resume: (state, history) to continue.
    """
    start = time.perf_counter()
    dims = scale_dims(spec, data)
    folds = make_folds(spec, data, group_columns or input_group_columns(spec), with_full)
    stats = fit_input_stats(spec, data, folds)
    batch = model_batch(spec, folds, stats)
    model = scale_model(spec, dims)
    arrays = {"inputs": jax.tree.map(jnp.asarray, data.inputs),
              "targets": jax.tree.map(jnp.asarray, data.targets)}
    result = ScaleResult(spec, dims, data, folds, batch, None, {}, {}, {}, 0.0)
    printer = progress_printer(spec.name, spec.training.epochs, progress)

    def chunk_done(state, history, done, seconds):
        if printer:
            printer(state, history, done, seconds)
        if on_chunk:
            on_chunk(result, state, history, done)

    state0, hist0 = resume if resume is not None else (None, None)
    try:
        state, history = train_models(model, arrays, batch, state=state0, history=hist0,
                                      on_chunk=chunk_done)
    except NonFiniteLoss as err:
        fold = int(np.asarray(batch.fold)[err.model])
        raise NestedAEError(f"scale '{spec.name}' fold {fold}: non-finite training loss at "
                            f"epoch {err.epoch} (head '{err.head}'); lower "
                            f"scales.{spec.name}.training.learning_rate or check the data"
                            ) from None
    result.state, result.history = state, history
    outputs = predict_models(model, result.params, batch.stats, arrays["inputs"])
    members = spec.training.ensemble
    if members > 1:  # (members * F, ...) -> (members, F, ...) -> mean over members
        by_member = jax.tree.map(
            lambda a: a.reshape(members, a.shape[0] // members, *a.shape[1:]), outputs)
        outputs, result.outputs_std = ensemble_summary(spec, by_member)
    result.outputs = outputs
    model_of_row = folds.fold_of_row if spec.cv.kind != "none" else None
    result.metrics = scale_metrics(spec, result.outputs, data.targets, folds.train, folds.val,
                                   model_of_row, folds.n_cv)
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class FitResult:
    """A trained config: one ScaleResult per scale, in order."""

    config: Config
    scales: dict[str, ScaleResult]
    seconds: float = 0.0
    finetuned: dict | None = None  # chain.finetune_epochs > 0: see finetune.finetune_chain


def prepare_scale(cfg: Config, spec: ScaleSpec, results: dict[str, ScaleResult], *,
                  data_root: str | None = None, frames: dict[str, pd.DataFrame] | None = None
                  ) -> tuple[ScaleData, list[str], bool]:
    """A scale's data with its latent inputs computed by the trained upstream ``results``;
    the raw columns of an encoder input row (for grouped CV); whether to add an all-rows model
    (it feeds downstream scales when chain.feed = all_rows)."""
    from . import nesting

    config_dir = str(Path(cfg.source).parent) if cfg.source and cfg.source != "<config>" else None
    frame = (frames or {}).get(spec.name)
    path = resolve_data_path(spec.data, config_dir, data_root) if frame is None \
        else Path(f"<{spec.name} data>")
    data = load_scale_data(spec, path, frame=frame)
    group_cols = input_group_columns(spec)
    for g in spec.inputs:
        if g.kind == "latent":
            data.inputs[g.name] = nesting.transfer_latent(cfg, results, g, data)
            group_cols += nesting.upstream_columns(results[g.scale].spec, g)
    with_full = cfg.chain.feed == "all_rows" and spec.cv.kind != "none" and any(
        spec.name in s.upstream for s in cfg.scales)
    return data, group_cols, with_full


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
        data, group_cols, with_full = prepare_scale(cfg, spec, results, data_root=data_root,
                                                    frames=frames)
        if progress:
            progress(f"scale '{spec.name}': {data.n_rows} rows, "
                     f"{spec.cv.kind} cv, {spec.training.epochs} epochs")
        results[spec.name] = fit_scale(spec, data, group_columns=group_cols,
                                       with_full=with_full, progress=progress,
                                       on_chunk=on_chunk, resume=(resume or {}).get(spec.name))
    finetuned = None
    if cfg.chain.finetune_epochs and len(cfg.scales) > 1:
        from .finetune import finetune_chain
        if progress:
            progress(f"joint fine-tuning of the chain: {cfg.chain.finetune_epochs} epochs")
        finetuned = finetune_chain(cfg, results, progress)
    return FitResult(cfg, results, time.perf_counter() - start, finetuned)
