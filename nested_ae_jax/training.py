"""Compiled training of many models at once: one loop for every objective in the package.

A *model batch* is M models that share a data set and a program but differ in their row masks
(cross-validation folds), seeds, hyper-parameters and (optionally) inputs of their own. A
training run is one compiled program per chunk of epochs: ``jax.vmap`` over the M models of
``jax.lax.scan`` over epochs of ``jax.lax.scan`` over mini-batches.

What is optimised is a :class:`Task`: pure functions of one model (initial parameters, the
loss of a mini-batch, the end-of-epoch record). :func:`scale_task` is a scale's supervised
autoencoder; joint fine-tuning of a chain (``finetune``) is another task on the same loop, so
shuffling, the chunk loop, the history, the non-finite guard and checkpoint callbacks exist
once. Each epoch reshuffles every row set ("stream") of the task; the first stream sets the
mini-batches per epoch and its last partial mini-batch is padded with masked rows (so it
behaves exactly like a smaller batch); further streams wrap around their shuffled rows.
Batches with no training rows at all (a fold with fewer rows than another) make no step.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import ScaleSpec, TrainingSpec
from .errors import NestedAEError
from .history import History, Losses
from .losses import head_row_losses, masked_mean, weight_penalty
from .model import Params, ScaleModel, Stats
from .modules import step_key

PRIMARY = "rows"  # the stream of a single-data-set task


class ModelBatch(NamedTuple):
    """M models trained together; every leaf has leading axis M.

    train_mask, val_mask: (M, N) float 0/1 row weights, or {STREAM: (M, N_s)} for a task with
    several row sets. stats: the input standardisation of each model. seed: (M,) initial-weight
    seed. fold: (M,) stream id for shuffling/dropout (the fold index: models with the same seed
    start from the same weights, as in the paper). hparams: see :func:`hyperparameters`.
    own_inputs: {GROUP: (M, N, d)} inputs that differ per model (a latent computed by each
    model's own upstream model); latent_mask: (M, L) 0/1 or None (see ``ScaleModel.apply``).
    """

    train_mask: Any
    val_mask: Any
    stats: Stats
    seed: jax.Array
    fold: jax.Array
    hparams: dict
    own_inputs: dict = {}
    latent_mask: jax.Array | None = None


class TrainState(NamedTuple):
    """Carry of the compiled loop, per model (leading axis M outside the vmap)."""

    params: Params
    opt_state: Any
    best_params: Params
    best_loss: jax.Array
    best_epoch: jax.Array
    epoch: jax.Array


class Task(NamedTuple):
    """What the loop optimises, as pure functions of ONE model (the loop vmaps them).

    init(seed, hparams) -> params.
    optimizer(hparams) -> optax.GradientTransformation.
    loss(params, mb, data, rows, rng) -> (total, aux): rows = {STREAM: (idx (B,), w (B,))};
        rng: this step's key (dropout), distinct for every model, epoch and step.
    evaluate(params, mb, data) -> (:class:`history.Losses` of scalars, criterion) at the
        end of an epoch (dropout off); the lowest criterion is "best".
    streams: ((STREAM, batch size), ...); the first sets the mini-batches per epoch.
    """

    init: Callable
    optimizer: Callable
    loss: Callable
    evaluate: Callable
    streams: tuple[tuple[str, int], ...]


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


def weighted_total(spec: ScaleSpec, hp: dict, heads: dict[str, jax.Array]) -> jax.Array:
    """sum_h weight_h * loss_h."""
    return sum(hp["weight"][h.name] * heads[h.name] for h in spec.heads)


def penalty(spec: ScaleSpec, params: Params, hp: dict) -> jax.Array:
    """The L1/L2 weight penalty of a scale's parameters at the hyper-parameters ``hp``."""
    return weight_penalty(params, _static_zeros(spec, hp, "l1"), _static_zeros(spec, hp, "l2"))


def loss_terms(model: ScaleModel, params: Params, stats: Stats, inputs: dict, targets: dict,
               weights: jax.Array, hp: dict, rng: jax.Array | None = None,
               latent_mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss of a (masked) set of rows and the per-head masked means.

    total = sum_h weight_h * mean_rows(loss_h) + L1/L2 penalty (added once, unscaled: the
    paper's per-mini-batch objective). ``weights``: (N,) row weights (mask); ``rng``: the
    dropout key of this step (None: no dropout).
    """
    dropout = _static_zeros(model.spec, hp, "dropout")
    outputs = model.apply(params, stats, inputs, rng=rng, dropout=dropout,
                          latent_mask=latent_mask)
    per_row = head_row_losses(model.spec, outputs, targets)
    heads = {name: masked_mean(v, weights) for name, v in per_row.items()}
    return weighted_total(model.spec, hp, heads) + penalty(model.spec, params, hp), heads


def model_inputs(mb: ModelBatch, data: dict) -> dict:
    """The inputs one model sees: the shared data's, with its own groups (own_inputs)."""
    return {**data["inputs"], **mb.own_inputs}


def split_losses(spec: ScaleSpec, hp: dict, per_row: dict, train: jax.Array, val: jax.Array,
                 prefix: str = "") -> Losses:
    """Masked means of per-row losses on the training and validation rows (no penalty), per
    term ``{prefix}HEAD`` and ``{prefix}total``."""
    def terms(mask):
        heads = {n: masked_mean(v, mask) for n, v in per_row.items()}
        return {**{prefix + n: v for n, v in heads.items()},
                prefix + "total": weighted_total(spec, hp, heads)}
    return Losses(terms(train), terms(val))


def _random_key(seed: jax.Array) -> jax.Array:
    return jax.random.key(seed)


@functools.cache
def scale_task(model: ScaleModel) -> Task:
    """A scale's supervised autoencoder as a :class:`Task` (cached per model, so compiled
    programs are reused)."""
    spec = model.spec

    def init(seed, hp):
        return model.init(jax.random.fold_in(_random_key(seed), 0))

    def loss(params, mb, data, rows, rng):
        idx, w = rows[PRIMARY]
        take = lambda a: a[idx]  # noqa: E731
        return loss_terms(model, params, mb.stats, jax.tree.map(take, model_inputs(mb, data)),
                          jax.tree.map(take, data["targets"]), w, mb.hparams, rng,
                          mb.latent_mask)

    def evaluate(params, mb, data):
        outputs = model.apply(params, mb.stats, model_inputs(mb, data),
                              latent_mask=mb.latent_mask)
        per_row = head_row_losses(spec, outputs, data["targets"])
        record = split_losses(spec, mb.hparams, per_row, mb.train_mask, mb.val_mask)
        has_val = mb.val_mask.sum() > 0
        return record, jnp.where(has_val, record.val["total"], record.train["total"])

    return Task(init, lambda hp: optimizer(spec.training, hp["learning_rate"]), loss,
                evaluate, ((PRIMARY, spec.training.batch_size),))


def stream_masks(task: Task, mask: Any) -> dict:
    """{STREAM: mask} of a batch's train_mask (a bare array is the single primary stream)."""
    return mask if isinstance(mask, dict) else {task.streams[0][0]: mask}


def epoch_rows(key: jax.Array, mask: jax.Array, n_steps: int, batch_size: int,
               wrap: bool) -> tuple[jax.Array, jax.Array]:
    """One epoch of mini-batches of a model's training rows (mask (N,)), shuffled by ``key``:
    (idx, w) each (n_steps, batch_size). Padded (w = 0) past the last training row, or, with
    ``wrap``, cycling through the shuffled rows again (w = 1). The training rows come in a
    uniformly random order (an exact permutation of all rows, training rows stably first)."""
    n_rows = mask.shape[0]
    perm = jax.random.permutation(key, n_rows)
    order = perm[jnp.argsort(mask[perm] <= 0, stable=True)]
    span = n_steps * batch_size
    n_train = mask.sum()
    if wrap:
        pos = jnp.arange(span) % jnp.maximum(n_train, 1).astype(jnp.int32)
        return order[pos].reshape(n_steps, batch_size), \
            jnp.broadcast_to((n_train > 0).astype(jnp.float32), (n_steps, batch_size))
    order = jnp.pad(order, (0, max(0, span - n_rows)))[:span]
    valid = (jnp.arange(span) < n_train).astype(jnp.float32)
    return order.reshape(n_steps, batch_size), valid.reshape(n_steps, batch_size)


def _epoch_fn(task: Task, n_steps: int, may_be_empty: bool) -> Callable:
    """One epoch of one model, (state, mb, data, evaluate) -> (state, record): shuffle, scan
    over mini-batches; with ``evaluate`` (static) also the end-of-epoch losses on every
    training and validation row (dropout off) and the best-so-far tracking.
    may_be_empty: some model has fewer mini-batches than ``n_steps`` (its extra batches are
    all padding and must be skipped)."""

    def epoch(state: TrainState, mb: ModelBatch, data: dict, evaluate: bool
              ) -> tuple[TrainState, dict | None]:
        opt = task.optimizer(mb.hparams)
        key = jax.random.fold_in(jax.random.fold_in(_random_key(mb.seed), 1 + mb.fold),
                                 state.epoch)
        k_perm, k_drop = jax.random.split(key)
        masks = stream_masks(task, mb.train_mask)
        rows = {name: epoch_rows(k_perm if i == 0 else step_key(k_perm, i),
                                 masks[name], n_steps, size, wrap=i > 0)
                for i, (name, size) in enumerate(task.streams)}
        primary = task.streams[0][0]

        def step(carry, xs):
            params, opt_state = carry
            batch_rows, index = xs
            rng = step_key(k_drop, index)
            grads = jax.grad(lambda p: task.loss(p, mb, data, batch_rows, rng)[0])(params)
            updates, new_opt = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if not may_be_empty:
                return (new_params, new_opt), None
            stepped = batch_rows[primary][1].sum() > 0  # all padding: Adam must not move
            keep = lambda new, old: jnp.where(stepped, new, old)  # noqa: E731
            return (jax.tree.map(keep, new_params, params),
                    jax.tree.map(keep, new_opt, opt_state)), None

        (params, opt_state), _ = jax.lax.scan(
            step, (state.params, state.opt_state), (rows, jnp.arange(n_steps)))
        state = state._replace(params=params, opt_state=opt_state, epoch=state.epoch + 1)
        if not evaluate:
            return state, None
        record, criterion = task.evaluate(params, mb, data)
        better = criterion < state.best_loss
        best_params = jax.tree.map(lambda new, old: jnp.where(better, new, old),
                                   params, state.best_params)
        return state._replace(best_params=best_params,
                              best_loss=jnp.where(better, criterion, state.best_loss),
                              best_epoch=jnp.where(better, state.epoch - 1, state.best_epoch)
                              ), record

    return epoch


def evaluated_epochs(start: int, n_epochs: int, every: int) -> np.ndarray:
    """1-based epochs of a chunk of ``n_epochs`` after ``start`` whose losses are recorded:
    every ``every``-th and the chunk's last."""
    return np.array([e for e in range(start + 1, start + n_epochs + 1)
                     if (e - start) % every == 0 or e == start + n_epochs], np.int32)


def history_epochs(epochs: int, chunk_epochs: int, every: int) -> np.ndarray:
    """1-based epochs recorded in the history of ``epochs`` epochs trained from scratch in
    chunks of ``chunk_epochs`` (as ``train_models`` splits them)."""
    starts = range(0, epochs, chunk_epochs)
    return np.concatenate([evaluated_epochs(start, min(chunk_epochs, epochs - start), every)
                           for start in starts] or [np.zeros(0, np.int32)])


def _train_counts(task: Task, batch: ModelBatch) -> np.ndarray:
    mask = stream_masks(task, batch.train_mask)[task.streams[0][0]]
    return np.asarray(mask).sum(axis=1)


def steps_per_epoch(task: Task, batch: ModelBatch) -> tuple[int, bool]:
    """Mini-batches per epoch (enough for the model with the most training rows of the first
    stream), and whether some model needs fewer (then its surplus batches are empty)."""
    size = task.streams[0][1]
    counts = [math.ceil(n / size) for n in _train_counts(task, batch)]
    return max(1, max(counts)), min(counts) != max(counts)


def capped_task(task: Task, batch: ModelBatch) -> Task:
    """The task with its first stream's batch size capped at the most training rows of any
    model (a batch larger than the data is one full batch per epoch; no padding beyond it)."""
    (name, size), *rest = task.streams
    cap = max(1, min(size, int(_train_counts(task, batch).max())))
    return task if cap == size else task._replace(streams=((name, cap), *rest))


def init_state(task: Task, batch: ModelBatch, params: Params | None = None) -> TrainState:
    """Initial weights (from each model's seed, or the given ``params`` with a leading model
    axis), optimiser state and best-so-far trackers. Compiled with the training programs'
    CPU options (:func:`_compiler_options`; XLA's default level took 23 s on the demo scale
    here, level 1 7.5 s) except when traced (a run's checkpoint template, under eval_shape)."""
    args = (batch.seed, batch.hparams, params)
    leaves = jax.tree.leaves(args)
    options = _compiler_options()
    if options is None or any(isinstance(a, jax.core.Tracer) for a in leaves):
        return _compiled_init(task, params is None)(*args)
    key = (task, params is None, jax.tree.structure(args),
           tuple((jnp.shape(a), jnp.result_type(a), getattr(a, "weak_type", False))
                 for a in leaves))
    if key not in _INIT_EXECUTABLES:
        _INIT_EXECUTABLES[key] = _compiled_init(task, params is None).lower(*args).compile(
            options)
    return _INIT_EXECUTABLES[key](*args)


_INIT_EXECUTABLES: dict = {}  # (task, from_seed, argument structure and types) -> executable


def _compiler_options() -> dict | None:
    """XLA options of the training programs: on CPU, backend optimisation level 1 unless
    XLA_FLAGS names a level. These programs are compile-bound on CPU (the paper's AE1
    protocol on 2 cores: 12.6 s with XLA's default level, 9.9 s at level 1, of which 5.9 /
    5.3 s training); level 1 compiles faster and its code runs no slower here."""
    if jax.default_backend() != "cpu" or "xla_backend_optimization_level" in os.environ.get(
            "XLA_FLAGS", ""):
        return None
    return {"xla_backend_optimization_level": 1}


@functools.cache
def _compiled_init(task: Task, from_seed: bool) -> Callable:
    def one(seed, hp, params):
        params = task.init(seed, hp) if from_seed else params
        opt_state = task.optimizer(hp).init(params)
        # explicit dtypes: weakly typed carries would recompile the chunk after its first call
        return TrainState(params, opt_state, params, jnp.asarray(jnp.inf, jnp.float32),
                          jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))

    # no compiler options here: loading a run traces this under jax.eval_shape, and XLA
    # options are refused on a nested jit (the program is small)
    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0 if not from_seed else None)))


@functools.cache
def _compiled_chunk(task: Task, n_steps: int, may_be_empty: bool, every: int) -> Callable:
    """jit(vmap over models(scan over the chunk's epochs)): groups of ``every`` epochs, the
    last of each evaluated (and the chunk's last epoch), so evaluation costs nothing in the
    epochs between (a batched lax.cond would evaluate anyway)."""
    epoch = _epoch_fn(task, n_steps, may_be_empty)

    def plain(state, mb, data, n):
        return jax.lax.scan(lambda s, _: (epoch(s, mb, data, False)[0], None), state, None,
                            length=n)[0] if n else state

    def group(state, mb, data, n):  # n - 1 plain epochs, then an evaluated one
        return epoch(plain(state, mb, data, n - 1), mb, data, True)

    def chunk_one(state, mb, data, n_epochs):
        full, rest = divmod(n_epochs, every)
        state, record = jax.lax.scan(lambda s, _: group(s, mb, data, every), state, None,
                                     length=full)
        if rest:
            state, last = group(state, mb, data, rest)
            record = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), record, last)
        return state, record

    def chunk(state, mb, data, n_epochs):
        return jax.vmap(chunk_one, in_axes=(0, 0, None, None))(state, mb, data, n_epochs)

    return jax.jit(chunk, static_argnums=3, compiler_options=_compiler_options())


def check_finite(history: History) -> None:
    """Raise :class:`NonFiniteLoss` naming the first model, epoch (counted from 1, as in
    history.csv) and head whose training loss went bad (the evaluated epochs of one chunk)."""
    for name, bad in _nonfinite_losses(history).items():
        if bad.any():
            model, column = np.argwhere(bad)[0]
            raise NonFiniteLoss(int(model), int(history.epoch[model, column]), name)


def diverged(history: History) -> np.ndarray:
    """(M,) bool: the models whose training loss of some head went NaN or infinite."""
    bad = [b.any(axis=1) for b in _nonfinite_losses(history).values()]
    return np.any(bad, axis=0) if bad else np.zeros(history.n_models, bool)


def _nonfinite_losses(history: History) -> dict[str, np.ndarray]:
    """{HEAD: (M, E) bool}: where each head's training loss is NaN or infinite (the
    totals left out)."""
    return {name: ~np.isfinite(v) for name, v in history.train.items()
            if not name.endswith("total")}


ChunkCallback = Callable[[TrainState, History, int, float], None]


def train_models(task: Task, data: dict, batch: ModelBatch, *, epochs: int,
                 chunk_epochs: int = 100, eval_every: int = 1,
                 state: TrainState | None = None,
                 init_params: Params | None = None,
                 history: History | None = None,
                 on_chunk: ChunkCallback | None = None,
                 devices: list | None = None,
                 keep_diverged: bool = False) -> tuple[TrainState, History]:
    """Train every model of ``batch`` on ``task`` for ``epochs``, in compiled chunks.

    data: arrays shared by all models (a scale task: {"inputs": {GROUP: (N, ...)}, "targets":
    {HEAD: (N, ...)}}). state/history: resume from a previous (checkpointed) state and its
    history; init_params: start from these parameters (leading model axis) instead of the
    seeds. on_chunk(state, history, epochs_done, seconds): called after each chunk (progress,
    checkpoints). devices: spread the models over these devices (default: all devices, when
    there are several; see :mod:`parallel`). Returns the final state and the
    :class:`history.History` of the evaluated epochs.
    Raises :class:`NonFiniteLoss` at the end of the chunk in which a training loss became
    non-finite, unless ``keep_diverged`` (sweeps: the other models of the batch go on, and
    :func:`diverged` of the history names the ones that went bad).
    """
    from . import parallel

    task = capped_task(task, batch)
    chunk = _compiled_chunk(task, *steps_per_epoch(task, batch), eval_every)
    state = init_state(task, batch, init_params) if state is None else state
    n_models = int(batch.seed.shape[0])
    devices = jax.devices() if devices is None else devices
    if len(devices) > 1:
        mesh = parallel.model_mesh(devices)
        n_pad = -n_models % len(devices)
        batch, state = (parallel.shard_models(parallel.pad_models(t, n_pad), mesh)
                        for t in (batch, state))
        data = parallel.replicate(data, mesh)
    done = int(np.asarray(parallel.to_host(state.epoch)).max())
    if history is not None:  # the columns of the epochs done (a checkpoint may hold more)
        history = history.upto(done)
    start = time.perf_counter()
    while done < epochs:
        n = min(chunk_epochs, epochs - done)
        state, record = chunk(state, batch, data, n)
        record = jax.tree.map(lambda v: v[:n_models], parallel.to_host(record))  # (M, n_eval)
        record = History.of_chunk(record, evaluated_epochs(done, n, eval_every))
        if not keep_diverged:
            check_finite(record)
        history = record if history is None else history.extend(record)
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
