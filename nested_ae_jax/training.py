"""Compiled training of many models of one scale at once.

A *model batch* is M models that share a data set and an architecture but differ in their row
masks (cross-validation folds), seeds and hyper-parameters. A training run is one compiled
program per chunk of epochs: ``jax.vmap`` over the M models of ``jax.lax.scan`` over epochs of
``jax.lax.scan`` over mini-batches. Each epoch reshuffles the model's training rows; the last
partial mini-batch is kept and padded with masked rows, so it behaves exactly like a smaller
batch. Batches with no training rows at all (a fold with fewer rows than another) make no
optimiser step.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import ScaleSpec, TrainingSpec
from .errors import NestedAEError
from .losses import head_row_losses, masked_mean, weight_penalty
from .model import Params, ScaleModel, Stats, dropout_noise


class ModelBatch(NamedTuple):
    """M models trained together; every leaf has leading axis M.

    train_mask, val_mask: (M, N) float 0/1 row weights. stats: the input standardisation of
    each model. seed: (M,) initial-weight seed. fold: (M,) stream id for shuffling/dropout (the
    fold index: models with the same seed start from the same weights, as in the paper).
    hparams: see :func:`hyperparameters`.
    """

    train_mask: jax.Array
    val_mask: jax.Array
    stats: Stats
    seed: jax.Array
    fold: jax.Array
    hparams: dict


class TrainState(NamedTuple):
    """Carry of the compiled loop, per model (leading axis M outside the vmap)."""

    params: Params
    opt_state: Any
    best_params: Params
    best_loss: jax.Array
    best_epoch: jax.Array
    epoch: jax.Array


class NonFiniteLoss(NestedAEError):
    """Training produced a NaN or infinite loss."""

    def __init__(self, model: int, epoch: int, head: str):
        self.model, self.epoch, self.head = model, epoch, head
        super().__init__(f"non-finite training loss in model {model} at epoch {epoch} "
                         f"(head '{head}'): lower the learning rate or check the data")


def selected_params(spec: ScaleSpec, state: TrainState) -> Params:
    """The parameters evaluated and used for prediction: training.select = last or best."""
    return state.best_params if spec.training.select == "best" else state.params


def hyperparameters(spec: ScaleSpec) -> dict:
    """The hyper-parameters that may differ between models of one batch (scalars; sweeps
    stack them): learning rate, L1/L2 per module, dropout per module, loss weight per head."""
    heads = spec.heads
    return {
        "learning_rate": spec.training.learning_rate,
        "l1": {"encoder": spec.encoder.l1, "heads": {h.name: h.l1 for h in heads}},
        "l2": {"encoder": spec.encoder.l2, "heads": {h.name: h.l2 for h in heads}},
        "dropout": {"encoder": spec.encoder.dropout, "heads": {h.name: h.dropout for h in heads}},
        "weight": {h.name: h.weight for h in heads},
    }


def optimizer(training: TrainingSpec, learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """Adam without schedule or weight decay (the paper's optimiser)."""
    return optax.adam(learning_rate, b1=training.b1, b2=training.b2, eps=training.eps)


def _static_zeros(spec: ScaleSpec, hp: dict, key: str) -> dict:
    """hp[key] ({"encoder": v, "heads": {HEAD: v}}) with the values that are 0 in the config
    replaced by a Python 0.0, so that unused dropout and penalties cost nothing in the
    compiled program. A sweep that varies one of them sets it in the config to non-zero."""
    def pick(cfg_value: float, value: Any) -> Any:
        return value if cfg_value != 0 else 0.0
    return {"encoder": pick(getattr(spec.encoder, key), hp[key]["encoder"]),
            "heads": {h.name: pick(getattr(h, key), hp[key]["heads"][h.name])
                      for h in spec.heads}}


def loss_terms(model: ScaleModel, params: Params, stats: Stats, inputs: dict, targets: dict,
               weights: jax.Array, hp: dict, noise: dict | None = None
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss of a (masked) set of rows and the per-head masked means.

    total = sum_h weight_h * mean_rows(loss_h) + L1/L2 penalty (added once, unscaled: the
    paper's per-mini-batch objective). ``weights``: (N,) row weights (mask); ``noise``: dropout
    noise for these rows (None: no dropout).
    """
    dropout = _static_zeros(model.spec, hp, "dropout")
    outputs = model.apply(params, stats, inputs, noise=noise, dropout=dropout)
    per_row = head_row_losses(model.spec, outputs, targets)
    heads = {name: masked_mean(v, weights) for name, v in per_row.items()}
    total = sum(hp["weight"][name] * v for name, v in heads.items())
    total = total + weight_penalty(params, _static_zeros(model.spec, hp, "l1"),
                                   _static_zeros(model.spec, hp, "l2"))
    return total, heads


def _random_key(seed: jax.Array) -> jax.Array:
    return jax.random.key(seed)


def init_state(model: ScaleModel, batch: ModelBatch) -> TrainState:
    """Initial weights (from each model's seed), optimiser state and best-so-far trackers."""
    return _compiled_init(model)(batch.seed, batch.hparams)


@functools.cache
def _compiled_init(model: ScaleModel) -> Callable:
    training = model.spec.training

    def one(seed, hp):
        params = model.init(jax.random.fold_in(_random_key(seed), 0))
        opt_state = optimizer(training, hp["learning_rate"]).init(params)
        # explicit dtypes: weakly typed carries would recompile the chunk after its first call
        return TrainState(params, opt_state, params, jnp.asarray(jnp.inf, jnp.float32),
                          jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))

    return jax.jit(jax.vmap(one))


def _epoch_fn(model: ScaleModel, n_steps: int, may_be_empty: bool, batch_size: int) -> Callable:
    """One epoch of one model: shuffle, scan over mini-batches, evaluate, track the best.
    may_be_empty: some model has fewer mini-batches than ``n_steps`` (its extra batches are
    all padding and must be skipped)."""
    spec, training = model.spec, model.spec.training
    head_names = [h.name for h in spec.heads]

    def epoch(state: TrainState, mb: ModelBatch, data: dict) -> tuple[TrainState, dict]:
        n_rows = mb.train_mask.shape[0]
        opt = optimizer(training, mb.hparams["learning_rate"])
        key = jax.random.fold_in(jax.random.fold_in(_random_key(mb.seed), 1 + mb.fold),
                                 state.epoch)
        k_perm, k_drop = jax.random.split(key)
        # training rows first, in random order; padded/truncated to n_steps * batch_size
        order = jnp.argsort(jnp.where(mb.train_mask > 0,
                                      jax.random.uniform(k_perm, (n_rows,)), 2.0))
        span = n_steps * batch_size
        order = jnp.pad(order, (0, max(0, span - n_rows)))[:span]
        n_train = mb.train_mask.sum()
        valid = (jnp.arange(span) < n_train).astype(jnp.float32)

        def step(carry, xs):
            params, opt_state = carry
            idx, w, noise = xs
            take = lambda a: a[idx]  # noqa: E731
            grads = jax.grad(lambda p: loss_terms(
                model, p, mb.stats, jax.tree.map(take, data["inputs"]),
                jax.tree.map(take, data["targets"]), w, mb.hparams, noise)[0])(params)
            updates, new_opt = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if not may_be_empty:
                return (new_params, new_opt), None
            stepped = w.sum() > 0  # an all-padding batch must not move Adam's moments
            keep = lambda new, old: jnp.where(stepped, new, old)  # noqa: E731
            return (jax.tree.map(keep, new_params, params),
                    jax.tree.map(keep, new_opt, opt_state)), None

        (params, opt_state), _ = jax.lax.scan(
            step, (state.params, state.opt_state),
            (order.reshape(n_steps, batch_size), valid.reshape(n_steps, batch_size),
             dropout_noise(k_drop, spec, (n_steps, batch_size))))

        # end-of-epoch losses on all training and validation rows, dropout off
        outputs = model.apply(params, mb.stats, data["inputs"])
        per_row = head_row_losses(spec, outputs, data["targets"])
        record = {}
        for split, mask in (("train", mb.train_mask), ("val", mb.val_mask)):
            heads = {n: masked_mean(per_row[n], mask) for n in head_names}
            for n in head_names:
                record[f"{split}/{n}"] = heads[n]
            record[f"{split}/total"] = sum(mb.hparams["weight"][n] * heads[n] for n in head_names)
        has_val = mb.val_mask.sum() > 0
        criterion = jnp.where(has_val, record["val/total"], record["train/total"])
        better = criterion < state.best_loss
        best_params = jax.tree.map(lambda new, old: jnp.where(better, new, old),
                                   params, state.best_params)
        new_state = TrainState(params, opt_state, best_params,
                               jnp.where(better, criterion, state.best_loss),
                               jnp.where(better, state.epoch, state.best_epoch),
                               state.epoch + 1)
        return new_state, record

    return epoch


def steps_per_epoch(batch: ModelBatch, batch_size: int) -> tuple[int, bool]:
    """Mini-batches per epoch (enough for the model with the most training rows), and whether
    some model needs fewer (then its surplus batches are empty)."""
    counts = [math.ceil(n / batch_size) for n in np.asarray(batch.train_mask).sum(axis=1)]
    return max(1, max(counts)), min(counts) != max(counts)


def effective_batch_size(batch: ModelBatch, batch_size: int) -> int:
    """The configured batch size, capped at the most training rows of any model (a batch
    larger than the data is one full batch per epoch; no padding beyond it)."""
    return max(1, min(batch_size, int(np.asarray(batch.train_mask).sum(axis=1).max())))


def compile_chunk(model: ScaleModel, batch: ModelBatch, batch_size: int) -> Callable:
    """jit(vmap over models(scan over ``n_epochs`` epochs)); ``n_epochs`` is static.
    Cached per (model, batch layout): repeated trainings reuse the compiled program."""
    batch_size = effective_batch_size(batch, batch_size)
    return _compiled_chunk(model, *steps_per_epoch(batch, batch_size), batch_size)


@functools.cache
def _compiled_chunk(model: ScaleModel, n_steps: int, may_be_empty: bool,
                    batch_size: int) -> Callable:
    epoch = _epoch_fn(model, n_steps, may_be_empty, batch_size)

    def chunk_one(state, mb, data, n_epochs):
        return jax.lax.scan(lambda s, _: epoch(s, mb, data), state, None, length=n_epochs)

    def chunk(state, mb, data, n_epochs):
        return jax.vmap(chunk_one, in_axes=(0, 0, None, None))(state, mb, data, n_epochs)

    return jax.jit(chunk, static_argnums=3)


def check_finite(history: dict[str, np.ndarray], first_epoch: int) -> None:
    """Raise :class:`NonFiniteLoss` naming the first model, epoch (counted from 1, as in
    history.csv) and head that went bad. ``history``: {"train/HEAD": (M, E)} for the epochs of
    one chunk, the first of which is epoch ``first_epoch + 1``."""
    for name, values in history.items():
        if not name.startswith("train/") or name == "train/total":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            model, epoch = np.argwhere(bad)[0]
            raise NonFiniteLoss(int(model), first_epoch + int(epoch) + 1, name.split("/", 1)[1])


ChunkCallback = Callable[[TrainState, dict[str, np.ndarray], int, float], None]


def train_models(model: ScaleModel, data: dict, batch: ModelBatch, *,
                 state: TrainState | None = None,
                 history: dict[str, np.ndarray] | None = None,
                 on_chunk: ChunkCallback | None = None,
                 devices: list | None = None) -> tuple[TrainState, dict[str, np.ndarray]]:
    """Train every model of ``batch`` for the scale's epochs, in compiled chunks.

    data: {"inputs": {GROUP: (N, ...)}, "targets": {HEAD: (N, ...)}} shared by all models.
    state/history: resume from a previous (checkpointed) state and its history.
    on_chunk(state, history, epochs_done, seconds): called after each chunk (progress,
    checkpoints). devices: spread the models over these devices (default: all devices, when
    there are several; see :mod:`parallel`). Returns the final state and the per-epoch history
    {"train/HEAD": (M, E), ...}. Raises :class:`NonFiniteLoss` at the end of the chunk in
    which a loss became non-finite.
    """
    from . import parallel

    training = model.spec.training
    chunk = compile_chunk(model, batch, training.batch_size)
    state = init_state(model, batch) if state is None else state
    n_models = int(batch.seed.shape[0])
    devices = jax.devices() if devices is None else devices
    if len(devices) > 1:
        mesh = parallel.model_mesh(devices)
        n_pad = -n_models % len(devices)
        batch, state = (parallel.shard_models(parallel.pad_models(t, n_pad), mesh)
                        for t in (batch, state))
        data = parallel.replicate(data, mesh)
    done = int(np.asarray(parallel.to_host(state.epoch)).max())
    history = {} if history is None else {k: np.asarray(v)[:, :done] for k, v in history.items()}
    start = time.perf_counter()
    while done < training.epochs:
        n = min(training.chunk_epochs, training.epochs - done)
        state, record = chunk(state, batch, data, n)
        record = {k: v[:n_models] for k, v in parallel.to_host(record).items()}  # (M, n)
        check_finite(record, done)
        history = {k: np.concatenate([history[k], v], axis=1) if k in history else v
                   for k, v in record.items()}
        done += n
        if on_chunk is not None:
            on_chunk(_first(state, n_models, len(devices) > 1), history, done,
                     time.perf_counter() - start)
    return _first(state, n_models, len(devices) > 1), history


def _first(state: TrainState, n_models: int, sharded: bool) -> TrainState:
    """The state of the real models (padding dropped), on the host when it was sharded."""
    if not sharded:
        return state
    from . import parallel

    return jax.tree.map(lambda a: jnp.asarray(a[:n_models]), parallel.to_host(state))
