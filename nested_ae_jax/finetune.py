"""Optional joint fine-tuning of a sequentially trained chain, end to end.

After the scales are trained in order (the paper), ``chain.finetune_epochs > 0`` trains one
copy of the whole chain per fold of the last scale on the weighted sum of every scale's loss
(``chain.finetune_weights``): each step takes a mini-batch of every scale's own training rows,
the upstream latents of the last scale's rows are computed in-graph, so gradients of the
device loss reach the atomic encoder. Copy k starts from the upstream model that fed the chain
and the last scale's fold-k model, trains on fold k's training rows (and the upstream model's
own training rows) and is scored on fold k's validation rows. Adam without dropout; the
reconstruction targets of latent groups are held constant, as in sequential training.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import Config
from .errors import ConfigError
from .evaluation import scale_metrics
from .losses import head_row_losses, masked_mean, weight_penalty
from .nesting import chain_inputs, feeding_entry, feeding_index, nest
from .training import check_finite, hyperparameters


def _scale_loss(chain, spec, cp, inputs, targets, weights, upto):
    outs = chain.apply({n: cp[n] for n in upto}, inputs)[spec.name]
    per_row = head_row_losses(spec, outs, targets)
    hp = hyperparameters(spec)
    heads = {n: masked_mean(v, weights) for n, v in per_row.items()}
    total = sum(hp["weight"][n] * v for n, v in heads.items())
    return total + weight_penalty(cp[spec.name]["params"], hp["l1"], hp["l2"]), heads


def finetune_chain(cfg: Config, results: dict, progress: Callable[[str], None] | None = None
                   ) -> dict:
    """Jointly fine-tune copies of the trained chain; returns {"params": chain params with a
    leading fold axis, "metrics": {SCALE: scale_metrics}, "history": {...}, "seconds"}."""
    start = time.perf_counter()
    order = [s.name for s in cfg.scales]
    specs = {s.name: s for s in cfg.scales}
    last = results[order[-1]]
    if any(s.training.ensemble > 1 for s in cfg.scales) or cfg.chain.feed == "fold_mean":
        raise ConfigError(f"{cfg.source}: chain.finetune_epochs needs single models "
                          "(training.ensemble = 1 and chain.feed = fold or all_rows)")
    n_copies = last.folds.n_cv
    chain = nest({n: results[n].model for n in order})
    weights = dict(cfg.chain.finetune_weights)

    # initial chain copies, trainable params and fixed stats, with a leading copy axis
    copies = {}
    train_rows, val_rows = {}, {}
    for n in order[:-1]:
        r = results[n]
        entry, _ = feeding_entry(cfg.chain, r.params, r.stats, r.n_cv, r.has_full)
        copies[n] = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_copies, *a.shape)), entry)
        (feed,) = feeding_index(cfg.chain, r.n_cv, r.has_full)
        train_rows[n] = np.broadcast_to(r.folds.train[feed], (n_copies, r.data.n_rows))
        val_rows[n] = np.broadcast_to(r.folds.val[feed], (n_copies, r.data.n_rows))
    idx = np.arange(n_copies)
    copies[order[-1]] = jax.tree.map(lambda a: jnp.asarray(a)[idx],
                                     {"params": last.params, "stats": last.batch.stats})
    train_rows[order[-1]], val_rows[order[-1]] = last.folds.train[idx], last.folds.val[idx]

    # every scale's rows with the raw inputs of the scales it depends on
    data, upto = {}, {}
    for n in order:
        upto[n] = order[:order.index(n) + 1]
        r = results[n]
        cats = {m: results[m].data.categories for m in upto[n]}
        data[n] = {"inputs": chain_inputs({m: specs[m] for m in upto[n]}, cats, r.data.frame, n,
                                          r.data.source),
                   "targets": jax.tree.map(jnp.asarray, r.data.targets)}
    batch_size = {n: specs[n].training.batch_size for n in order}
    n_steps = max(1, math.ceil(train_rows[order[-1]].sum(axis=1).max() /
                               batch_size[order[-1]]))
    opt = optax.adam(cfg.chain.finetune_learning_rate)

    def total_loss(params, stats, batches):
        cp = {n: {"params": params[n], "stats": stats[n]} for n in order}
        total = 0.0
        for n in order:
            idx_b, w = batches[n]
            inputs = jax.tree.map(lambda a: a[idx_b], data[n]["inputs"])
            targets = jax.tree.map(lambda a: a[idx_b], data[n]["targets"])
            loss, _ = _scale_loss(chain, specs[n], cp, inputs, targets, w, upto[n])
            total = total + weights.get(n, 1.0) * loss
        return total

    def epoch(carry, e, stats, train_mask, val_mask):
        params, opt_state = carry
        n_train = {n: train_mask[n].sum().astype(jnp.int32) for n in order}
        key = jax.random.fold_in(jax.random.key(specs[order[-1]].training.seed), 7919 + e)
        orders = {}
        for i, n in enumerate(order):
            u = jax.random.uniform(jax.random.fold_in(key, i), train_mask[n].shape)
            orders[n] = jnp.argsort(jnp.where(train_mask[n] > 0, u, 2.0))

        def step(c, s):
            p, o = c
            batches = {}
            for n in order:
                pos = (s * batch_size[n] + jnp.arange(batch_size[n]))
                if n == order[-1]:
                    w = (pos < n_train[n]).astype(jnp.float32)
                    pos = jnp.minimum(pos, train_mask[n].shape[0] - 1)
                else:
                    w = jnp.ones(batch_size[n])
                    pos = pos % n_train[n]
                batches[n] = (orders[n][pos], w)
            grads = jax.grad(total_loss)(p, stats, batches)
            updates, o = opt.update(grads, o, p)
            return (optax.apply_updates(p, updates), o), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), jnp.arange(n_steps))
        cp = {n: {"params": params[n], "stats": stats[n]} for n in order}
        record = {}
        for n in order:
            for split, rows in (("train", train_mask[n]), ("val", val_mask[n])):
                loss, _ = _scale_loss(chain, specs[n], cp, data[n]["inputs"],
                                      data[n]["targets"], rows, upto[n])
                record[f"{split}/{n}"] = loss
        return (params, opt_state), record

    def run_copy(params, stats, train_mask, val_mask, opt_state, first, n_epochs):
        return jax.lax.scan(lambda c, e: epoch(c, e, stats, train_mask, val_mask),
                            (params, opt_state), first + jnp.arange(n_epochs))

    run = jax.jit(jax.vmap(run_copy, in_axes=(0, 0, 0, 0, 0, None, None)), static_argnums=6)
    params = {n: copies[n]["params"] for n in order}
    stats = {n: copies[n]["stats"] for n in order}
    masks_t = {n: jnp.asarray(train_rows[n], jnp.float32) for n in order}
    masks_v = {n: jnp.asarray(val_rows[n], jnp.float32) for n in order}
    opt_state = jax.vmap(opt.init)(params)
    total_epochs = cfg.chain.finetune_epochs
    chunk = specs[order[-1]].training.chunk_epochs
    history: dict[str, np.ndarray] = {}
    done = 0
    while done < total_epochs:
        n = min(chunk, total_epochs - done)
        (params, opt_state), record = run(params, stats, masks_t, masks_v, opt_state, done, n)
        record = {k: np.asarray(v) for k, v in record.items()}
        check_finite(record, done)
        history = {k: np.concatenate([history[k], v], 1) if k in history else v
                   for k, v in record.items()}
        done += n
        if progress:
            progress(f"  [finetune] epoch {done}/{total_epochs}  train "
                     f"{np.mean(history[f'train/{order[-1]}'][:, -1]):.4f}  val "
                     f"{np.mean(history[f'val/{order[-1]}'][:, -1]):.4f}  "
                     f"{time.perf_counter() - start:.1f}s")

    metrics = {}
    for n in order:
        r = results[n]
        outs = jax.vmap(lambda p, s: chain.apply(
            {m: {"params": p[m], "stats": s[m]} for m in upto[n]}, data[n]["inputs"])[n])(
            params, stats)
        fold_of_row = r.folds.fold_of_row if n == order[-1] else None
        metrics[n] = scale_metrics(specs[n], outs, r.data.targets, np.asarray(masks_t[n]),
                                   np.asarray(masks_v[n]), fold_of_row, n_copies)
    return {"params": {"params": params, "stats": stats}, "metrics": metrics,
            "history": history, "seconds": time.perf_counter() - start}
