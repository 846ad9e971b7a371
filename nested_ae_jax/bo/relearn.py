"""A latent map that learns during a campaign (``latent GP (retrained)``): a deep-kernel view
of NestedAE.

The honest chain (``bo.chain.honest_chain``) never sees the campaign's target: its latents
compress the inputs only. A real campaign retrains its model on what it has measured, so
:func:`relearner` gives the engine (``bo.run_campaign(relearn=...)``) a :class:`~.campaign.
Relearn`: every R rounds, the objective's scale (the only scale of the honest chain that sees
the target: the chain ends there, and upstream scales stay as trained, blind) is retrained,
one model per trial (``jax.vmap`` over trials in the package's training loop:
``training.train_models`` on a ``ModelBatch`` whose row masks are the trials' revealed
candidates), warm-started from that trial's previous weights (first: the honest model's),
for ``epochs`` full-batch Adam steps (the config's learning rate) with the target head on
(the config's weight); one compiled program serves every refit of a trial count. The GP then runs on the
upstream latents and the retrained scale's latent of every candidate.

Honesty: the engine passes targets as ``where(revealed, y, 0)``, and the training task here
(:func:`revealed_only`) replaces every target outside a model's training rows by 0 before
any loss sees it (a mini-batch's padding slots point at such rows), so an unrevealed target
never reaches a refit's arithmetic: ``tests/test_bo_relearn.py`` poisons them with NaN / 1e30
and gets the same, finite weights and features. Heads of that scale whose columns a pool
does not hold (other measurements) train at weight 0.

Shapes: n running trials, P candidates, L the scale's latent width, D all features.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..data import encode_inputs
from ..evaluation import predict_models
from ..training import ModelBatch, Task, hyperparameters, scale_task, train_models
from .campaign import Relearn
from .chain import HeadObjective, LatentMap, chain_scales


@functools.cache
def revealed_only(task: Task) -> Task:
    """``task`` with every target outside the model's training rows (``mb.train_mask``)
    replaced by 0 before its loss and its evaluation read them (cached: one compiled
    program per task)."""

    def clean(mb, data):
        keep = mb.train_mask > 0
        targets = {k: jnp.where(keep.reshape(keep.shape + (1,) * (v.ndim - 1)), v,
                                jnp.zeros((), v.dtype)) for k, v in data["targets"].items()}
        return {**data, "targets": targets}

    return task._replace(
        loss=lambda p, mb, data, rows, rng: task.loss(p, mb, clean(mb, data), rows, rng),
        evaluate=lambda p, mb, data: task.evaluate(p, mb, clean(mb, data)))


def pool_arrays(latent_map: LatentMap, target: HeadObjective, pool: pd.DataFrame
                ) -> tuple[dict, dict]:
    """The objective scale's model data for the pool's candidates: {"inputs", "targets"}
    (upstream latents from the honest chain's predictions; every head's targets 0: the target
    head's are filled from the revealed rows at each refit) and {HEAD: bool} the heads that
    train (the target head only: other heads' columns are not measurements of the pool)."""
    ts = latent_map.trained[target.scale]
    spec = ts.spec
    inputs = encode_inputs(spec, pool, ts.categories, "<pool>")
    for g in spec.inputs:
        if g.kind == "latent":
            inputs[g.name] = np.asarray(latent_map.predictions[g.scale][0].latent, np.float32)
    targets, real = {}, {}
    for h in spec.heads:
        if h.kind == "regression":
            real[h.name] = h.name == target.head
            targets[h.name] = np.zeros((len(pool), len(h.target)), np.float32)
        elif h.kind == "categorical" and not h.input:
            real[h.name] = False
            targets[h.name] = np.zeros(len(pool), np.int32)
    as_j = lambda t: jax.tree.map(jnp.asarray, t)  # noqa: E731
    return {"inputs": as_j(inputs), "targets": as_j(targets)}, real


def relearner(cfg, target: HeadObjective, latent_map: LatentMap, pool: pd.DataFrame, *,
              every: int = 10, epochs: int = 50, fixed: np.ndarray | None = None) -> Relearn:
    """The campaign's relearned latent map (see the module docstring): every ``every``
    rounds, ``epochs`` epochs of the objective scale per trial on its revealed rows. The
    head weight is the original config's (``cfg``; 1 if it is 0 there). fixed: (P, F)
    features put before the latents of every candidate (``hybrid``: the raw descriptors)."""
    ts = latent_map.trained[target.scale]
    model, spec = ts.model, ts.spec
    data, real = pool_arrays(latent_map, target, pool)
    specs = latent_map.config.specs
    upstream = np.concatenate(
        [np.asarray(latent_map.predictions[n][0].latent, np.float32)
         for n in chain_scales(specs, target.scale)[:-1]] or [np.zeros((len(pool), 0))], 1)
    if fixed is not None:
        upstream = np.concatenate([np.asarray(fixed, np.float32), upstream], 1)
    weight = {h.name: h.weight for h in cfg.scale(target.scale).heads}[target.head] or 1.0
    hp = hyperparameters(spec)
    hp["weight"] = {h: (weight if h == target.head else w) if real.get(h, True) else 0.0
                    for h, w in hp["weight"].items()}
    first = jax.tree.map(lambda a: np.asarray(a)[0], (ts.params, ts.stats))
    base = scale_task(model)
    task = revealed_only(base._replace(streams=((base.streams[0][0], len(pool)),)))
    warm: dict[int, object] = {}  # trial -> its retrained weights (numpy tree)

    off = {**hp, "weight": {h: 0.0 for h in hp["weight"]}}  # the padding model learns nothing

    def fn(revealed: np.ndarray, y_seen: np.ndarray, trials: np.ndarray) -> np.ndarray:
        n = revealed.shape[0]
        # model n (discarded) has every row and every head at weight 0: the loop's batch
        # (full batch, one step per epoch) and program are then the same at every refit
        masks = np.concatenate([revealed, np.ones((1, revealed.shape[1]), bool)])
        stack = lambda trees: jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *trees)  # noqa: E731
        params0 = stack([warm.get(int(t), first[0]) for t in trials] + [first[0]])
        batch = ModelBatch(jnp.asarray(masks, jnp.float32),
                           jnp.zeros(masks.shape, jnp.float32), stack([first[1]] * (n + 1)),
                           jnp.full(n + 1, spec.training.seed, jnp.int32),
                           jnp.asarray([*trials, 0], jnp.int32), stack([hp] * n + [off]))
        # the target column: each candidate's target where some trial revealed it, else 0
        # (every model reads its own revealed rows only: ``revealed_only``)
        hits = revealed.sum(0)
        column = np.where(revealed, y_seen, 0.0).sum(0) / np.maximum(hits, 1)
        seen = {**data, "targets": {**data["targets"],
                                    target.head: jnp.asarray(column[:, None], jnp.float32)}}
        state, _ = train_models(task, seen, batch, epochs=epochs, chunk_epochs=epochs,
                                eval_every=epochs, init_params=params0)
        params = jax.tree.map(lambda a: a[:n], state.params)
        host = jax.tree.map(np.asarray, params)
        # a trial repeated to pad the batch keeps the weights of its first (real) row
        for t, i in zip(*np.unique(np.asarray(trials), return_index=True)):
            warm[int(t)] = jax.tree.map(lambda a: a[i], host)
        stats = jax.tree.map(lambda a: a[:n], batch.stats)
        latent = np.asarray(predict_models(model, params, stats, data["inputs"]).latent,
                            np.float32)
        return np.concatenate([np.broadcast_to(upstream, (n, *upstream.shape)), latent], -1)

    return Relearn(fn, int(every))
