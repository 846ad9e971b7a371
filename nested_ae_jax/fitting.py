"""Fit a batch of replicas of one scale: the one place where models of a scale are trained.

A *replica* is a seed with a set of hyper-parameters (and optionally a latent mask); every
replica is trained on every fold, all in one compiled call (model axis replica-major, fold
minor: model ``r * F + f``). ``runner`` (cross-validation, ensembles), ``sweep`` (grids),
``compare`` (seed batches), the latent-size scan (masks) all call :func:`fit_models`.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .config import ScaleSpec
from .errors import ConfigError
from .data import ScaleData, fit_stats
from .evaluation import predict_models
from .history import History
from .model import ScaleModel, ScaleOutputs, scale_dims, scale_model
from .splits import Folds
from .training import (ModelBatch, TrainState, diverged, hyperparameters, scale_task,
                       selected_params, train_models)

Progress = Callable[[str], None]


class Replica(NamedTuple):
    """One seed with its hyper-parameters (see ``training.hyperparameters``) and an optional
    (L,) 0/1 latent mask."""

    seed: int
    hparams: dict
    latent_mask: np.ndarray | None = None


class Layout(NamedTuple):
    """Rows and identity of the M models trained together (leading axis M everywhere).
    train/val: (M, N) float32 masks; seed: (M,) initial-weight seeds; fold: (M,)
    shuffling/dropout streams (the fold index); hparams: {...: (M,)}; latent_mask: (M, L) or
    None; stat_rows: (M, N) rows the scalers are fitted on."""

    train: np.ndarray
    val: np.ndarray
    seed: np.ndarray
    fold: np.ndarray
    hparams: dict
    latent_mask: np.ndarray | None
    stat_rows: np.ndarray

    @property
    def n_models(self) -> int:
        return self.train.shape[0]


class ModelsFit(NamedTuple):
    """A trained batch: the model, its batch and final state, the per-epoch history, the
    selected parameters and their outputs on the data (leaves (M, N, ...)), wall seconds;
    snapshots: the outputs of the parameters after each of ``fit_models``' ``snapshots``
    epochs (same leaves), in that order."""

    model: ScaleModel
    batch: ModelBatch
    state: TrainState
    history: History
    params: dict
    outputs: ScaleOutputs
    seconds: float
    snapshots: tuple = ()


def config_replicas(spec: ScaleSpec) -> list[Replica]:
    """The config's models per fold: seeds seed, seed+1, ... (training.ensemble of them)."""
    hp = hyperparameters(spec)
    return [Replica(spec.training.seed + j, hp) for j in range(spec.training.ensemble)]


def replica_layout(spec: ScaleSpec, folds: Folds, replicas: Sequence[Replica] | None = None
                   ) -> Layout:
    """Every replica (default: the config's ensemble) on every fold, replica-major. Scalers are
    fitted on each model's training rows (scaler = train) or on all rows (all, the paper)."""
    replicas = config_replicas(spec) if replicas is None else list(replicas)
    per, r = folds.n_models, len(replicas)
    train, val = np.tile(folds.train, (r, 1)), np.tile(folds.val, (r, 1))
    masks = [x.latent_mask for x in replicas]
    latent_mask = None if all(m is None for m in masks) else np.repeat(
        np.stack([np.ones(spec.encoder.latent_size, np.float32) if m is None else m
                  for m in masks]), per, axis=0).astype(np.float32)
    hps = [jax.tree.map(lambda v: np.full(per, v, np.float32), x.hparams) for x in replicas]
    return Layout(train, val, np.repeat([x.seed for x in replicas], per).astype(np.int32),
                  np.tile(np.arange(per), r).astype(np.int32),
                  jax.tree.map(lambda *v: np.concatenate(v), *hps), latent_mask,
                  train if spec.scaler == "train" else np.ones_like(train))


def fit_input_stats(spec: ScaleSpec, data: ScaleData, rows: np.ndarray,
                    own_inputs: dict | None = None) -> dict:
    """Standardisation of every numeric/latent group per model on ``rows`` (M, N); groups in
    ``own_inputs`` ((M, N, d), one block per model) are fitted on each model's own block."""
    own_inputs = own_inputs or {}
    return {g.name: fit_stats(own_inputs.get(g.name, data.inputs.get(g.name)), rows,
                              name=g.name, source=data.source, allow_constant=g.kind == "latent")
            for g in spec.inputs if g.kind != "categorical"}


def data_arrays(data: ScaleData) -> dict:
    """The arrays every model shares: {"inputs": ..., "targets": ...} (per-model inputs,
    with a leading model axis, are left to the model batch)."""
    shared = {k: v for k, v in data.inputs.items() if np.ndim(v) < 3}
    return {"inputs": jax.tree.map(jnp.asarray, shared),
            "targets": jax.tree.map(jnp.asarray, data.targets)}


def own_inputs(data: ScaleData, n_models: int) -> dict:
    """Input groups that differ per fold ((F, N, d): each fold's models fed by their own
    upstream models), tiled to the M = replicas x F models of a layout: {GROUP: (M, N, d)}."""
    return {k: np.tile(v, (n_models // v.shape[0], 1, 1))
            for k, v in data.inputs.items() if np.ndim(v) == 3}


def model_batch(spec: ScaleSpec, data: ScaleData, layout: Layout, stats: dict | None = None
                ) -> ModelBatch:
    """The ModelBatch of a layout (scalers fitted on ``layout.stat_rows`` unless given)."""
    own = own_inputs(data, layout.n_models)
    stats = fit_input_stats(spec, data, layout.stat_rows, own) if stats is None else stats
    as_j = lambda t: jax.tree.map(jnp.asarray, t)  # noqa: E731
    return ModelBatch(jnp.asarray(layout.train, jnp.float32), jnp.asarray(layout.val, jnp.float32),
                      as_j(stats), jnp.asarray(layout.seed, jnp.int32),
                      jnp.asarray(layout.fold, jnp.int32), as_j(layout.hparams), as_j(own),
                      None if layout.latent_mask is None else jnp.asarray(layout.latent_mask))


def progress_printer(label: str, epochs: int, out: Progress | None) -> Callable | None:
    """A chunk callback that prints one progress line: epochs done, losses and the seconds
    since the callback was made (one clock across the resumed runs of training lengths)."""
    if out is None:
        return None
    start = time.perf_counter()

    def on_chunk(state, history, done, _seconds):
        seconds = time.perf_counter() - start
        now = history.last()
        total = [k for k in now.train if k.endswith("total")][-1]
        train, val = np.nanmean(now.train[total]), now.val[total]
        val_txt = f" val {np.mean(val):.4f}" if np.any(val > 0) else ""
        width, filled = 20, int(20 * done / epochs)
        out(f"  [{label}] [{'#' * filled}{'.' * (width - filled)}] epoch {done}/{epochs}  "
            f"train {train:.4f}{val_txt}  {seconds:.1f}s")

    return on_chunk


def latent_maskable(spec: ScaleSpec) -> bool:
    """Whether a narrower latent of ``spec`` can train as a masked unit of a wider one with
    the same numbers (:func:`narrow_init`): the built-in network in the encoder and every
    head (a module of one's own may use its widths otherwise)."""
    return not spec.encoder.module and not any(h.module for h in spec.heads)


def narrow_init(wide: ScaleModel, narrow: Sequence[ScaleSpec], per: int):
    """Initial parameters of ``wide`` (leading model axis, ``per`` models per spec, spec-major)
    for models whose specs have latents of at most its width: each spec's own network
    initialised from its seed exactly as training would (``scale_task``), zero-padded to the
    wide shapes. Trained with the latent mask of its width, a padded unit has zero weights in
    and out and a zero gradient, so they stay zero and the wide model trains to the narrow
    one's numbers (dropout included: only hidden layers drop, and their shapes match)."""
    shapes = jax.eval_shape(wide.init, jax.random.key(0))

    def pad(a, like):
        return jnp.pad(a, [(0, w - n) for n, w in zip(a.shape, like.shape)])

    trees = [jax.tree.map(pad, scale_task(scale_model(s, wide.dims)).init(
        jnp.int32(s.training.seed), None), shapes) for s in narrow]
    return jax.tree.map(lambda *a: jnp.repeat(jnp.stack(a), per, axis=0), *trees)


def fit_models(spec: ScaleSpec, data: ScaleData, layout: Layout, *,
               stats: dict | None = None, epochs: int | None = None,
               resume: tuple[TrainState, History] | None = None,
               init_params: dict | None = None,
               on_chunk: Callable | None = None, progress: Progress | None = None,
               label: str | None = None, devices: list | None = None,
               snapshots: Sequence[int] = (), keep_diverged: bool = False) -> ModelsFit:
    """Train the models of ``layout`` on ``data`` in one compiled call per chunk and predict
    every row with each (dropout off, training.select's parameters).

    stats: scalers (default: fitted on layout.stat_rows); epochs: override
    training.epochs; resume: (state, history) to continue; init_params: start from these
    parameters (leading model axis; :func:`narrow_init`); on_chunk(state, history, done,
    seconds): after every chunk (checkpoints); progress: print a line per chunk, labelled
    ``label`` (default the scale's name); snapshots: also predict with the parameters after
    each of these epochs (``ModelsFit.snapshots``; training.select = last). With no
    schedule and keys folded by epoch, the parameters after L epochs are those of a run of
    L epochs, so one run scores every training length up to ``epochs``. keep_diverged: a
    model whose training loss goes non-finite does not stop the others (``train_models``);
    its outputs are NaN on every row from then on (``evaluation.diverged_models`` finds
    them; under training.select = best too, though its best epoch may come before).
    """
    start = time.perf_counter()
    model = scale_model(spec, scale_dims(spec, data))
    batch = model_batch(spec, data, layout, stats)
    arrays = data_arrays(data)
    epochs = epochs or spec.training.epochs
    printer = progress_printer(label or spec.name, epochs, progress)

    def chunk_done(state, history, done, seconds):
        for callback in (printer, on_chunk):
            if callback:
                callback(state, history, done, seconds)

    def predict(params):  # after training to ``history``: its diverged models NaN
        return _nan_where(diverged(history), predict_models(
            model, params, batch.stats, arrays["inputs"], batch.own_inputs, batch.latent_mask))

    state, history = resume if resume is not None else (None, None)
    check_snapshots(spec, snapshots, epochs,
                    0 if state is None else int(np.max(np.asarray(state.epoch))))
    taken = {}
    for stop in sorted({*snapshots, epochs}):
        state, history = train_models(scale_task(model), arrays, batch, epochs=stop,
                                      chunk_epochs=spec.training.chunk_epochs,
                                      eval_every=spec.training.eval_every, state=state,
                                      history=history,
                                      init_params=init_params if state is None else None,
                                      on_chunk=chunk_done, devices=devices,
                                      keep_diverged=keep_diverged)
        if stop in snapshots:  # on the host: L snapshots must not hold L x device memory
            taken[stop] = jax.device_get(predict(state.params))
    params = selected_params(spec, state)
    outputs = taken[epochs] if epochs in taken else predict(params)
    return ModelsFit(model, batch, state, history, params, outputs, time.perf_counter() - start,
                     tuple(taken[e] for e in snapshots))


def _nan_where(bad: np.ndarray, outputs):
    """``outputs`` (leaves (M, N, ...)) with every float leaf NaN for the models ``bad``."""
    if not bad.any():
        return outputs
    return jax.tree.map(lambda a: jnp.where(bad.reshape(-1, *[1] * (a.ndim - 1)), jnp.nan, a)
                        if jnp.issubdtype(a.dtype, jnp.floating) else a, outputs)


def check_snapshots(spec: ScaleSpec, snapshots: Sequence[int], epochs: int,
                    done: int = 0) -> None:
    """Snapshot epochs: whole numbers from 1 to ``epochs``, after the ``done`` epochs of a
    resumed state, of the last parameters (training.select = last)."""
    if not snapshots:
        return
    if done and min(snapshots) < done:
        raise ConfigError(f"scales.{spec.name}: training length {min(snapshots)} is before the "
                          f"{done} epochs of the resumed state")
    if spec.training.select != "last":
        raise ConfigError(f"scales.{spec.name}: training lengths from one run need "
                          "training.select = 'last' (a best epoch is chosen on validation rows)")
    bad = [e for e in snapshots if isinstance(e, bool) or not isinstance(e, (int, np.integer))
           or not 1 <= e <= epochs]
    if bad:
        raise ConfigError(f"scales.{spec.name}: training lengths {bad} are not whole epochs "
                          f"from 1 to the {epochs} trained")
