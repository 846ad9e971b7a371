"""Supervised comparison: NestedAE vs single autoencoders vs scikit-learn on identical folds."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import Config, HeadSpec, ScaleSpec
from ..errors import NestedAEError
from ..evaluation import pooled_outputs, regression_metrics
from ..model import group_features
from ..runner import ScaleResult, fit_config
from .comparison import SKLEARN_MODELS, TABLE_COLUMNS, Comparison, Progress, say
from .configs import SPLITS, single_scale_config, split_config, with_epochs
from .report import summary_markdown


def _fold_maes(fold_of_row: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([np.abs(p[fold_of_row == f] - y[fold_of_row == f]).mean()
                     for f in np.unique(fold_of_row[fold_of_row >= 0])])


def _score_row(target: str, split: str, model: str, y: np.ndarray, pred: np.ndarray,
               fold_of_row: np.ndarray, seconds: float) -> dict:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    y = y.reshape(len(y), -1)
    pred = pred.reshape(len(pred), -1)
    m = regression_metrics(y, pred)
    folds = _fold_maes(fold_of_row, y, pred)
    return {"target": target, "split": split, "model": model, "n": m["n"], "mae": m["mae"],
            "rmse": m["rmse"], "r2": m["r2"], "fold_mae_mean": float(folds.mean()),
            "fold_mae_std": float(folds.std()), "n_folds": len(folds),
            "seconds": round(float(seconds), 2)}


def ae_predictions(result: ScaleResult, head: str) -> np.ndarray:
    """Out-of-fold predictions (N, k) of a regression head of a trained scale."""
    pooled = pooled_outputs(result.outputs, np.maximum(result.folds.fold_of_row, 0))
    return np.asarray(pooled.heads[head])


def design_matrices(result: ScaleResult) -> list[np.ndarray]:
    """Per CV fold, the (N, d) features the scale's fold model sees: numeric groups
    standardised with that model's own statistics, categorical groups one-hot (the model's
    own featuriser, :func:`~nested_ae_jax.model.group_features`)."""
    spec, data, stats = result.spec, result.data, result.batch.stats
    out = []
    for f in range(result.folds.n_cv):
        blocks = [group_features(g.kind, np.asarray(data.inputs[g.name]),
                                 len(data.categories.groups[g.name]), xp=np)
                  if g.kind == "categorical" else
                  group_features(g.kind, np.asarray(data.inputs[g.name]), 0,
                                 {k: np.asarray(v)[f] for k, v in stats[g.name].items()}, xp=np)
                  for g in spec.inputs]
        out.append(np.concatenate(blocks, axis=1).astype(np.float64))
    return out


def sklearn_model(name: str, random_state: int = 0):
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    if name == "random forest":
        return RandomForestRegressor(n_estimators=100, random_state=random_state, n_jobs=1)
    if name == "ridge":
        return Ridge(alpha=1.0)
    if name == "mean":
        return DummyRegressor(strategy="mean")
    raise ValueError(name)


def sklearn_oof(name: str, features: list[np.ndarray], y: np.ndarray,
                fold_of_row: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions (N, k) of a scikit-learn model: fold f's model is fitted on the
    rows outside fold f (features[f]: that fold's standardised features)."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    pred = np.zeros_like(y)
    for f, x in enumerate(features):
        val = fold_of_row == f
        model = sklearn_model(name)
        target = y[~val] if y.shape[1] > 1 else y[~val, 0]
        model.fit(x[~val], target)
        pred[val] = np.asarray(model.predict(x[val])).reshape(int(val.sum()), -1)
    return pred


def _check_same_folds(reference: np.ndarray, other: np.ndarray, what: str) -> None:
    if not np.array_equal(reference, other):
        raise NestedAEError(f"internal: {what} was trained on other folds than the chain "
                            "(fold assignment differs)")


def _regression_heads(spec: ScaleSpec) -> list[HeadSpec]:
    return [h for h in spec.heads if h.kind == "regression"]


def compare_supervised(cfg: Config, *, data_root: str | None = None,
                       splits: Sequence[str] = SPLITS, epochs: int | None = None,
                       progress: Progress | None = None,
                       frames: dict[str, pd.DataFrame] | None = None,
                       sklearn: Sequence[str] = SKLEARN_MODELS, tuned: Sequence[str] = (),
                       tune_trials: int = 20) -> Comparison:
    """NestedAE vs single autoencoders vs scikit-learn baselines on the chain's folds, for
    every regression head of every scale and every split kind; ``tuned``: baselines of
    :data:`~nested_ae_jax.compare.tuned.TUNED_MODELS` tuned by nested CV on the same folds
    (``tune_trials`` settings each per outer split, :mod:`~nested_ae_jax.compare.tuned`)."""
    from .tuned import tuned_oof

    cfg = with_epochs(cfg, epochs)
    rows, folds, fits, notes, settings = [], {}, {}, [], []
    for split in splits:
        scfg = split_config(cfg, split)
        say(progress, f"== split {split}: NestedAE chain ==")
        fit = fit_config(scfg, data_root=data_root, progress=progress, frames=frames)
        fits[split] = fit
        for spec in scfg.scales:
            res = fit.results[spec.name]
            fold_of_row = res.folds.fold_of_row
            key = (split, spec.name)
            folds[key] = {"NestedAE": fold_of_row}
            heads = _regression_heads(spec)
            for h in heads:
                rows.append(_score_row(f"{spec.name}.{h.name}", split, "NestedAE",
                                       res.data.targets[h.name], ae_predictions(res, h.name),
                                       fold_of_row, res.seconds))
            feature_source = res
            if spec.upstream and heads:
                for label, raw in (("single AE (raw)", True), ("single AE (own)", False)):
                    single, dropped = single_scale_config(scfg, spec.name, raw_upstream=raw,
                                                          frame=res.data.frame)
                    if dropped and split == splits[0]:
                        notes.append(f"{label} of scale '{spec.name}': upstream column(s) "
                                     f"{', '.join(dropped)} are constant on its rows and were "
                                     "left out")
                        say(progress, "note: " + notes[-1])
                    groups = " + ".join(g.name for g in single.scales[0].inputs)
                    say(progress, f"== split {split}: {label}: {groups} ==")
                    sfit = fit_config(single, data_root=data_root, progress=progress,
                                      frames=None if frames is None else
                                      {spec.name: frames[spec.name]},
                                      fold_ids={spec.name: fold_of_row})
                    sres = sfit.results[spec.name]
                    _check_same_folds(fold_of_row, sres.folds.fold_of_row, label)
                    folds[key][label] = sres.folds.fold_of_row
                    for h in heads:
                        rows.append(_score_row(f"{spec.name}.{h.name}", split, label,
                                               sres.data.targets[h.name],
                                               ae_predictions(sres, h.name), fold_of_row,
                                               sres.seconds))
                    if raw:
                        feature_source = sres
            if not heads:
                continue
            features = design_matrices(feature_source)
            for name in sklearn:
                start = time.perf_counter()
                folds[key][name] = fold_of_row
                for h in heads:
                    y = res.data.targets[h.name]
                    pred = sklearn_oof(name, features, y, fold_of_row)
                    rows.append(_score_row(f"{spec.name}.{h.name}", split, name, y, pred,
                                           fold_of_row, time.perf_counter() - start))
            for name in tuned:
                folds[key][name] = fold_of_row
                for h in heads:
                    say(progress, f"== split {split}: {name} on {spec.name}.{h.name}: "
                                  f"{tune_trials} settings x {res.folds.n_cv} outer splits ==")
                    start, y = time.perf_counter(), res.data.targets[h.name]
                    pred, chosen = tuned_oof(name, features, y, fold_of_row,
                                             trials=tune_trials, seed=spec.training.seed)
                    rows.append(_score_row(f"{spec.name}.{h.name}", split, name, y, pred,
                                           fold_of_row, time.perf_counter() - start))
                    settings += [{"target": f"{spec.name}.{h.name}", "split": split,
                                  **c._asdict()} for c in chosen]
        say(progress, summary_markdown(pd.DataFrame(rows, columns=TABLE_COLUMNS)
                                        .query("split == @split")))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return Comparison(table, folds, fits, "supervised", cfg.source, notes, settings)


