"""Optional joint fine-tuning of a sequentially trained chain, end to end.

After the scales are trained in order (the paper), ``chain.finetune_epochs > 0`` trains one
copy of the whole chain per fold of the last scale on the weighted sum of every scale's loss
(``chain.finetune_weights``): each step takes a mini-batch of every scale's own training rows,
the upstream latents of a scale's rows are computed in-graph, so gradients of the device loss
reach the atomic encoder. Copy k starts from the upstream model that fed the chain and the last
scale's fold-k model (with chain.split = matched: upstream fold k), trains on fold k's training
rows (and the upstream model's own training rows) and is scored on fold k's validation rows. Adam without dropout; the reconstruction
targets of latent groups are held constant, as in sequential training. Upstream inputs of a
scale's rows are standardised as in training (chain.transfer_scaler: the upstream scaler, or
re-fitted on that scale's rows).

It is a :class:`training.Task` on the package's one training loop (shuffling, chunks, history,
non-finite guard, padding batches that take no step).
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import Config
from .errors import ConfigError, NestedAEError
from .evaluation import scale_metrics
from .fitting import progress_printer
from .history import History, Losses
from .losses import head_row_losses, masked_mean
from .chain import TrainedChain
from .nesting import ChainParams, ScaleEntry, nest
from .trained import finetune_start, refit_upstream
from .training import (ModelBatch, NonFiniteLoss, Task, hyperparameters, penalty, split_losses,
                       train_models, weighted_total)


class Finetuned(NamedTuple):
    """Result of joint fine-tuning: params {SCALE: ScaleEntry} with a leading copy (fold)
    axis, metrics {SCALE: scale_metrics document}, history (terms "SCALE.HEAD", leading copy
    axis C), wall seconds."""

    params: ChainParams
    metrics: dict
    history: History
    seconds: float


def _finetune_task(cfg: Config, chain, order: list[str], upto: dict[str, list[str]]) -> Task:
    """The joint training task: every scale's head losses (weighted by
    ``chain.finetune_weights``) through the whole chain, one row stream per scale (the last
    scale's first), Adam at ``chain.finetune_learning_rate``; evaluation on each scale's rows."""
    specs = cfg.specs
    weights = dict(cfg.chain.finetune_weights)

    def scale_loss(params, mb, n, inputs, targets, w):
        cp = {m: ScaleEntry(params[m], mb.stats[n][m]) for m in upto[n]}
        per_row = head_row_losses(specs[n], chain.apply(cp, inputs)[n], targets)
        return per_row, {h: masked_mean(v, w) for h, v in per_row.items()}

    def loss(params, mb, data, rows, _rng):  # no dropout in fine-tuning
        total = 0.0
        for n in order:
            idx, w = rows[n]
            take = lambda a: a[idx]  # noqa: E731
            _, heads = scale_loss(params, mb, n, jax.tree.map(take, data[n]["inputs"]),
                                  jax.tree.map(take, data[n]["targets"]), w)
            hp = hyperparameters(specs[n])
            total = total + weights.get(n, 1.0) * (weighted_total(specs[n], hp, heads)
                                                   + penalty(specs[n], params[n], hp))
        return total, None

    def evaluate(params, mb, data):
        parts = []
        for n in order:
            per_row, _ = scale_loss(params, mb, n, data[n]["inputs"], data[n]["targets"],
                                    mb.train_mask[n])
            parts.append(split_losses(specs[n], hyperparameters(specs[n]), per_row,
                                      mb.train_mask[n], mb.val_mask[n], prefix=f"{n}."))
        record = Losses.merge(parts)
        return record, record.val[f"{order[-1]}.total"]

    streams = ((order[-1], specs[order[-1]].training.batch_size),
               *((n, specs[n].training.batch_size) for n in order[:-1]))
    return Task(None, lambda hp: optax.adam(cfg.chain.finetune_learning_rate), loss, evaluate,
                streams)


def _copy_metrics(cfg: Config, chain, results: dict, order: list[str], upto, data, stats,
                  params, train, val, n_copies: int) -> dict:
    """Per scale, the fine-tuned copies' metrics (out-of-fold for the last scale)."""
    specs = cfg.specs
    metrics = {}
    for n in order:
        outs = jax.vmap(lambda p, s: chain.apply(
            {m: ScaleEntry(p[m], s[m]) for m in upto[n]}, data[n]["inputs"])[n])(
            params, stats[n])
        fold_of_row = results[n].folds.fold_of_row if n == order[-1] else None
        metrics[n] = scale_metrics(specs[n], outs, results[n].data.targets, train[n], val[n],
                                   fold_of_row, n_copies)
    return metrics


def finetune_chain(cfg: Config, results: dict, progress: Callable[[str], None] | None = None
                   ) -> Finetuned:
    """Jointly fine-tune one copy of the trained chain per fold of the last scale."""
    start = time.perf_counter()
    order = [s.name for s in cfg.scales]
    specs = cfg.specs
    last = results[order[-1]]
    if any(s.training.ensemble > 1 for s in cfg.scales) or cfg.chain.feed == "fold_mean":
        raise ConfigError(f"{cfg.source}: chain.finetune_epochs needs single models "
                          "(training.ensemble = 1 and chain.feed = fold or all_rows)")
    n_copies = last.folds.n_cv
    chain = nest({n: results[n].model for n in order})
    upto = {n: order[:order.index(n) + 1] for n in order}

    # starting entries (leading copy axis) and row masks per scale: copy k is the chain that
    # predicts with the last scale's fold-k model (trained.finetune_start: fed as in training)
    sequential = TrainedChain(cfg, {n: r.trained for n, r in results.items()}, results=results)
    start_index = finetune_start(sequential.trained, order[-1])
    entries = {n: results[n].trained.pick(start_index[n]) for n in order}
    train = {n: np.asarray(results[n].folds.train)[start_index[n]] for n in order}
    val = {n: np.asarray(results[n].folds.val)[start_index[n]] for n in order}

    # every scale's rows with the raw inputs of the scales it depends on, and the scalers its
    # upstream inputs are standardised with (the trainer's transfer_scaler)
    data, stats = {}, {}
    for n in order:
        r = results[n]
        inputs = sequential.inputs(r.data.frame, scale=n, source=r.data.source)
        data[n] = {"inputs": inputs, "targets": jax.tree.map(jnp.asarray, r.data.targets)}
        cp = refit_upstream(cfg.chain, chain, {m: entries[m] for m in upto[n]}, inputs,
                            list(specs[n].upstream))
        stats[n] = {m: cp[m].stats for m in upto[n]}

    task = _finetune_task(cfg, chain, order, upto)
    batch = ModelBatch({n: jnp.asarray(train[n], jnp.float32) for n in order},
                       {n: jnp.asarray(val[n], jnp.float32) for n in order},
                       stats, jnp.full(n_copies, specs[order[-1]].training.seed, jnp.int32),
                       jnp.asarray(7919 + np.arange(n_copies), jnp.int32),
                       {"learning_rate": jnp.full(n_copies, cfg.chain.finetune_learning_rate)})
    epochs = cfg.chain.finetune_epochs
    try:
        state, history = train_models(
            task, data, batch, epochs=epochs, chunk_epochs=specs[order[-1]].training.chunk_epochs,
            eval_every=specs[order[-1]].training.eval_every,
            init_params={n: entries[n].params for n in order},
            on_chunk=progress_printer("finetune", epochs, progress))
    except NonFiniteLoss as err:
        raise NestedAEError(f"fine-tuning copy {err.model}: non-finite loss at epoch "
                            f"{err.epoch} ({err.head}); lower chain.finetune_learning_rate"
                            ) from None

    params = {n: ScaleEntry(state.params[n], entries[n].stats) for n in order}
    metrics = _copy_metrics(cfg, chain, results, order, upto, data, stats, state.params, train,
                            val, n_copies)
    return Finetuned(params, metrics, history, time.perf_counter() - start)
