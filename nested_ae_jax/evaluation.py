"""Honest metrics: per sample, over all evaluated rows, dropout off.

Regression heads: MAE, RMSE, R^2 (raw target units; averaged over target columns when a head
has several). Reconstruction heads: MAE and RMSE in standardised units. Categorical heads: argmax
accuracy and mean cross-entropy. Reported per model on its training and validation rows, and
pooled out-of-fold: every row scored once, by the model that did not train on it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .config import ScaleSpec
from .losses import head_targets
from .model import Params, ScaleModel, ScaleOutputs, Stats


ROW_CHUNK = 65536  # rows per compiled prediction call: bounds the layers' activations


def predict_models(model: ScaleModel, params: Params, stats: Stats, inputs: dict,
                   own_inputs: dict | None = None, latent_mask: jax.Array | None = None,
                   chunk: int = ROW_CHUNK) -> ScaleOutputs:
    """Outputs of M models (leading axis M on params, stats, own_inputs and latent_mask) on the
    same rows, dropout off: ScaleOutputs with leaves (M, N, ...). inputs: {GROUP: (N, d)};
    own_inputs: {GROUP: (M, N, d)}. More than ``chunk`` rows go through one compiled program
    ``chunk`` rows at a time (the last chunk padded), so intermediate activations stay
    (M, chunk, width)."""
    own = own_inputs or {}
    predict = _compiled_predict(model)
    n = _n_rows(inputs, own)
    if n <= chunk:
        return predict(params, stats, inputs, own, latent_mask)
    pad = -n % chunk
    grow = lambda a, axis: jnp.pad(jnp.asarray(a), [(0, pad) if i == axis else (0, 0)  # noqa: E731
                                                    for i in range(jnp.ndim(a))])
    inputs = jax.tree.map(lambda a: grow(a, 0), inputs)
    own = jax.tree.map(lambda a: grow(a, 1), own)
    parts = [predict(params, stats, jax.tree.map(lambda a: a[s:s + chunk], inputs),
                     jax.tree.map(lambda a: a[:, s:s + chunk], own), latent_mask)
             for s in range(0, n + pad, chunk)]
    return jax.tree.map(lambda *p: jnp.concatenate(p, axis=1)[:, :n], *parts)


def _n_rows(inputs: dict, own: dict) -> int:
    leaves = jax.tree.leaves(inputs)
    return int(leaves[0].shape[0]) if leaves else int(jax.tree.leaves(own)[0].shape[1])


@functools.cache
def _compiled_predict(model: ScaleModel):
    def one(p, s, x, own, mask):
        return model.apply(p, s, {**x, **own}, latent_mask=mask)
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, 0, 0)))


def safe_std(v: jax.Array, axis: int = 0) -> jax.Array:
    """Std over ``axis`` with a finite gradient where the values agree exactly (std 0)."""
    var = jnp.var(v, axis=axis)
    pos = var > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, var, 1.0)), 0.0)


def ensemble_summary(spec: ScaleSpec, outputs: ScaleOutputs) -> tuple[ScaleOutputs, dict]:
    """Combine models along the leading axis: heads averaged (categorical: log of the mean
    probability), features and latent of the first model (latent axes of different models do
    not line up), and the std of every non-categorical head (differentiable: see
    :func:`safe_std`). Leaves (M, ...) -> (...)."""
    heads, std = {}, {}
    for h in spec.heads:
        out = outputs.heads[h.name]
        if h.kind == "categorical":
            heads[h.name] = jnp.log(jax.nn.softmax(out, axis=-1).mean(axis=0))
        else:
            heads[h.name] = out.mean(axis=0)
            std[h.name] = safe_std(out)
    first = jax.tree.map(lambda a: a[0], outputs)
    return first._replace(heads=heads), std


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R^2 of (n, k) targets and predictions, averaged over the k columns."""
    err = p - y
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - (err**2).sum(axis=0) / np.where(ss_tot > 0, ss_tot, np.nan)
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean(axis=0)).mean()),
            "r2": float(np.mean(r2)), "n": int(len(y))}


def reconstruction_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    err = p - y
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
            "n": int(len(y))}


def categorical_metrics(codes: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
    ce = -np.take_along_axis(logp, codes[:, None].astype(int), axis=-1)[:, 0]
    return {"accuracy": float((logits.argmax(axis=-1) == codes).mean()),
            "cross_entropy": float(ce.mean()), "n": int(len(codes))}


def head_metrics(spec: ScaleSpec, targets: dict, outputs: dict, rows: np.ndarray) -> dict:
    """{HEAD: metrics} of one model's outputs (no model axis) on the boolean ``rows``."""
    out = {}
    if not rows.any():
        return out
    for h in spec.heads:
        y, p = np.asarray(targets[h.name])[rows], np.asarray(outputs.heads[h.name])[rows]
        if h.kind == "regression":
            out[h.name] = regression_metrics(y, p)
        elif h.kind == "reconstruction":
            out[h.name] = reconstruction_metrics(y, p)
        else:
            out[h.name] = categorical_metrics(y, p)
    return out


def comparison_targets(spec: ScaleSpec, outputs: dict, targets: dict) -> dict:
    """What each head is scored against, per model: {HEAD: (M, N, ...)}."""
    return jax.vmap(lambda o: head_targets(spec, o, targets))(outputs)


def take_model(tree: dict, m: int) -> dict:
    return jax.tree.map(lambda a: np.asarray(a)[m], tree)


def pooled_outputs(outputs: dict, model_of_row: np.ndarray) -> dict:
    """Out-of-fold outputs: row i taken from model ``model_of_row[i]`` (rows with -1 dropped
    later by the caller's mask). Leaves (M, N, ...) -> (N, ...)."""
    rows = np.arange(len(model_of_row))
    pick = np.maximum(model_of_row, 0)
    return jax.tree.map(lambda a: np.asarray(a)[pick, rows], outputs)


def scale_metrics(spec: ScaleSpec, outputs: dict, targets: dict, train_mask: np.ndarray,
                  val_mask: np.ndarray, model_of_row: np.ndarray | None,
                  n_cv: int | None = None) -> dict:
    """Metrics of M models of one scale.

    outputs: predict_models output (M, N, ...); targets: the scale's target arrays;
    train_mask/val_mask: (M, N); model_of_row: (N,) index of the model that validates each row
    (-1: none), or None when no model has validation rows. n_cv: the first n_cv models are
    folds; later ones (a model trained on all rows) are reported under "all_rows".
    Returns {"heads": {HEAD: {"pooled_val": {...}}}, "folds": [{"train": {...}, "val": {...}}],
    "all_rows": {"train": {...}}} where each fold entry is {HEAD: metrics}.
    """
    compare = comparison_targets(spec, outputs, targets)
    n_cv = train_mask.shape[0] if n_cv is None else n_cv
    folds = []
    for m in range(train_mask.shape[0]):
        o, t = take_model(outputs, m), take_model(compare, m)
        folds.append({"train": head_metrics(spec, t, o, train_mask[m] > 0),
                      "val": head_metrics(spec, t, o, val_mask[m] > 0)})
    extra, folds = folds[n_cv:], folds[:n_cv]
    heads: dict[str, dict] = {h.name: {} for h in spec.heads}
    if model_of_row is not None and (model_of_row >= 0).any():
        pooled = head_metrics(spec, pooled_outputs(compare, model_of_row),
                              pooled_outputs(outputs, model_of_row), model_of_row >= 0)
        for name, m in pooled.items():
            heads[name]["pooled_val"] = m
    for name in heads:
        heads[name]["pooled_train_mean"] = _mean_over_models([f["train"].get(name) for f in folds])
    out = {"heads": heads, "folds": folds}
    if extra:
        out["all_rows"] = {"train": extra[0]["train"]}
    return out


def metric_columns(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{HEAD: {STAT: value}} (a pooled or a fold's validation table) as flat
    {PREFIX HEAD.STAT: value} columns, without the row counts ``n``."""
    return {f"{prefix}{head}.{k}": v for head, m in metrics.items() for k, v in m.items()
            if k != "n"}


def _mean_over_models(entries: list[dict | None]) -> dict:
    entries = [e for e in entries if e]
    if not entries:
        return {}
    return {k: float(np.mean([e[k] for e in entries])) for k in entries[0] if k != "n"}


def diverged_models(outputs) -> np.ndarray:
    """(M,) bool: the models (leading axis of ``outputs``' leaves) whose outputs are NaN on
    every row, as ``fitting.fit_models(keep_diverged=True)`` marks a model whose training
    loss went non-finite (read from training, so never from validation rows)."""
    leaves = [np.asarray(a) for a in jax.tree.leaves(outputs)]
    flags = [np.isnan(a.reshape(len(a), -1)).all(axis=1) for a in leaves
             if np.issubdtype(a.dtype, np.floating) and a.size]
    return np.any(flags, axis=0) if flags else np.zeros(len(leaves[0]), bool)
