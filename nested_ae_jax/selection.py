"""Honest selection of a setting: nested cross-validation for sweeps.

Picking the setting with the lowest validation error on the folds it is then scored on is
optimistic. With ``K`` outer folds, each outer fold's training rows are split again into the
scale's inner folds; every setting is cross-validated on those (inner models), the setting with
the best pooled inner error is chosen *per outer fold*, and the chosen setting's model trained
on all of that outer fold's training rows (the outer model) is scored on the outer validation
rows, which took no part in the choice. Pooled over the outer folds, that is the error to
expect from "sweep, then pick the best". All inner and outer models of every setting are extra
rows of the sweep's model batch: the same compiled groups. In a chain, every nested model is
fed by upstream models trained without its validation entities (``nested_chain``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

from .config import ScaleSpec
from .errors import ConfigError
from .evaluation import diverged_models, ensemble_summary, metric_columns, scale_metrics
from .ranking import finite_members, top_k
from .splits import Folds, assign_folds


class NestedFolds(NamedTuple):
    """Masks of the K x (I + 1) models of one setting: for outer fold o, inner models
    o*(I+1) + i (i < I: trained on the outer training rows outside inner fold i, validated on
    inner fold i) and the outer model o*(I+1) + I (trained on every outer training row,
    validated on outer fold o). outer: (N,) outer fold of each row; inner: (N,) inner fold of
    each row within its outer fold's training set, per outer fold: (K, N), -1 outside it."""

    outer: np.ndarray
    inner: np.ndarray
    train: np.ndarray
    val: np.ndarray

    @property
    def n_outer(self) -> int:
        return self.inner.shape[0]

    @property
    def n_inner(self) -> int:
        return self.train.shape[0] // self.n_outer - 1


def nested_folds(outer: np.ndarray, n_inner: int, random_state: int,
                 groups: np.ndarray | None = None) -> NestedFolds:
    """Inner folds (KFold, or GroupKFold on ``groups`` (N,)) inside every outer fold's
    training rows; outer: (N,) outer fold of each row."""
    n_outer, n = int(outer.max()) + 1, len(outer)
    inner = np.full((n_outer, n), -1, np.int32)
    for o in range(n_outer):
        rows = np.flatnonzero(outer != o)
        kind = "kfold" if groups is None else "group"
        inner[o, rows] = assign_folds(len(rows), kind=kind, n_splits=n_inner, shuffle=True,
                                      random_state=random_state,
                                      groups=None if groups is None else groups[rows])
    return nested_masks(outer, inner, n_inner)


def nested_masks(outer: np.ndarray, inner: np.ndarray, n_inner: int) -> NestedFolds:
    """The K x (I + 1) models' masks from outer (N,) and inner (K, N) fold ids (-1: in the
    outer fold; outer -1: never an outer validation row; inner = I: in every inner model's
    training rows, never an inner validation row)."""
    train, val = [], []
    for o in range(inner.shape[0]):
        for i in range(n_inner):
            train.append((inner[o] >= 0) & (inner[o] != i))
            val.append(inner[o] == i)
        train.append(outer != o)
        val.append(outer == o)
    return NestedFolds(np.asarray(outer, np.int32), np.asarray(inner, np.int32),
                       np.asarray(train, np.float32), np.asarray(val, np.float32))


def with_nested(folds: Folds, nested: NestedFolds) -> Folds:
    """The sweep's folds followed by the nested models' masks (one model batch)."""
    return Folds(folds.fold_of_row, np.concatenate([folds.train, nested.train]),
                 np.concatenate([folds.val, nested.val]))


def per_model_inputs(inputs: dict, n_folds: int, nested_inputs: dict) -> dict:
    """Latent groups of the combined layout: the F fold models' own (``inputs``: (N, d), or
    (F, N, d) per fold) followed by the nested models' ``nested_inputs`` {GROUP: (M, N, d)}
    (each nested model fed by its own nested upstream models, see ``nested_chain``)."""
    out = {}
    for name, nested in nested_inputs.items():
        x = np.asarray(inputs[name])
        own = x[:n_folds] if x.ndim == 3 else np.broadcast_to(x, (n_folds, *x.shape))
        out[name] = np.concatenate([own, np.asarray(nested, own.dtype)])
    return out


def _stat(metrics: dict, metric: str) -> float:
    """``HEAD.STAT`` of a {HEAD: {STAT: value}} table (a pooled or a fold's validation one)."""
    head, stat = metric.rsplit(".", 1)
    entry = metrics.get(head, {})
    if stat not in entry:
        raise ConfigError(f"sweep --metric {metric!r}: no pooled validation {stat} of head "
                          f"'{head}'")
    return float(entry[stat])


def _pooled(spec: ScaleSpec, outputs, targets: dict, train: np.ndarray, val: np.ndarray,
            model_of_row: np.ndarray, metric: str) -> dict:
    """scale_metrics of the models and the pooled ``metric`` over their validation rows."""
    m = scale_metrics(spec, outputs, targets, train, val, model_of_row, train.shape[0])
    return m, _stat({h: v.get("pooled_val", {}) for h, v in m["heads"].items()}, metric)


def inner_errors(spec: ScaleSpec, outputs: list, targets: dict, nested: NestedFolds,
                 metric: str) -> np.ndarray:
    """(S, K): the pooled inner-fold ``metric`` of every setting in every outer fold, from
    the nested models' outputs (per setting, leaves (K*(I+1), N, ...)); only the inner
    models (trained and validated inside outer fold o's training rows) are read; NaN where
    one of outer fold o's models diverged (its outer model too: a setting whose outer model
    diverged cannot be chosen nor join an ensemble there; divergence is read from training
    on outer-training rows only)."""
    per, k = nested.n_inner + 1, nested.n_outer
    inner = np.zeros((len(outputs), k))
    bad = np.array([diverged_models(out).reshape(k, per).any(axis=1) for out in outputs])
    for s, out in enumerate(outputs):
        for o in range(k):
            idx = np.arange(o * per, o * per + nested.n_inner)
            sub = jax.tree.map(lambda a: a[idx], out)
            inner[s, o] = np.nan if bad[s, o] else _pooled(
                spec, sub, targets, nested.train[idx], nested.val[idx], nested.inner[o],
                metric)[1]
    return inner


def select(spec: ScaleSpec, settings: list[dict], outputs: list, targets: dict,
           nested: NestedFolds, metric: str, maximise: bool, allowed: np.ndarray | None = None,
           ensemble: int = 1) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """Choose a setting per outer fold on its inner error, score it on the outer rows.

    settings: one dict per setting; outputs: per setting, the nested models' outputs (leaves
    (K*(I+1), N, ...)); allowed: (S, K) bool, the settings outer fold o may choose from
    (default all; successive halving narrows it per outer fold). Returns (summary: the pooled
    outer and mean inner metric of the chosen settings, the per-fold table: outer fold,
    chosen setting, its inner ``metric`` and its outer metrics of every head (``outer
    HEAD.STAT`` columns), the (S, K) inner errors). summary["heads"]: {HEAD.STAT: pooled
    outer value} of every head, from the same outer models as ``metric``'s figure.
    ensemble > 1: summary["ensemble"] also scores, per outer fold, the mean prediction of its
    ``ensemble`` best settings by inner error (:func:`top_k`; ``ensemble_summary``) on its
    outer rows: {"k", "chosen": per outer fold its settings, best first (fewer than k where
    some diverged, :func:`finite_members`), "outer", "heads",
    "folds": per outer fold its ``outer HEAD.STAT`` columns}."""
    k = nested.n_outer
    outputs = [jax.tree.map(np.asarray, out) for out in outputs]  # to the host once
    inner = inner_errors(spec, outputs, targets, nested, metric)
    top = finite_members(top_k(inner, allowed, ensemble, maximise), inner, allowed,
                         "nested CV, outer fold {}")
    chosen = np.array([t[0] for t in top])
    m, outer = _score_outer(spec, outputs, [t[:1] for t in top], targets, nested, metric)
    heads, folds = _outer_columns(m)
    rows = [{"outer_fold": o, "setting": int(chosen[o]), **settings[chosen[o]],
             f"inner {metric}": inner[chosen[o], o], **folds[o]} for o in range(k)]
    summary = {"outer_folds": k, "inner_folds": nested.n_inner, "metric": metric,
               "outer": outer, "inner": float(inner[chosen, np.arange(k)].mean()),
               "heads": heads}
    if ensemble > 1:
        m, outer = _score_outer(spec, outputs, top, targets, nested, metric)
        heads, folds = _outer_columns(m)
        summary["ensemble"] = {"k": ensemble, "chosen": [t.tolist() for t in top],
                               "outer": outer, "heads": heads, "folds": folds}
    return summary, pd.DataFrame(rows), inner


def _score_outer(spec: ScaleSpec, outputs: list, members: list[np.ndarray], targets: dict,
                 nested: NestedFolds, metric: str) -> tuple[dict, float]:
    """scale_metrics and pooled ``metric`` of the outer models, outer fold o predicting with
    the settings ``members[o]`` (one: its outer model; more: their mean prediction,
    ``ensemble_summary``), from ``outputs`` (per setting, leaves (K*(I+1), N, ...)). The
    latents are left out: settings of different compiled groups have latents of different
    widths, and no metric reads them."""
    outer_idx = np.arange(nested.n_outer) * (nested.n_inner + 1) + nested.n_inner

    def model(o: int):
        trees = [jax.tree.map(lambda a: a[outer_idx[o]], outputs[s]._replace(latent=None))
                 for s in members[o]]
        if len(trees) == 1:
            return trees[0]
        stacked = jax.tree.map(lambda *a: np.stack(a), *trees)
        return jax.tree.map(np.asarray, ensemble_summary(spec, stacked)[0])

    picked = jax.tree.map(lambda *a: np.stack(a), *[model(o) for o in range(nested.n_outer)])
    return _pooled(spec, picked, targets, nested.train[outer_idx], nested.val[outer_idx],
                   nested.outer, metric)


def _outer_columns(m: dict) -> tuple[dict, list[dict]]:
    """{HEAD.STAT: pooled outer value} of every head, and per outer fold its ``outer
    HEAD.STAT`` columns, from the outer models' scale_metrics ``m``."""
    heads = metric_columns({h: v.get("pooled_val", {}) for h, v in m["heads"].items()})
    return heads, [metric_columns(f["val"], "outer ") for f in m["folds"]]
