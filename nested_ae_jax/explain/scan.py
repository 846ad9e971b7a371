"""Latent-size scan: one compiled training program for every latent size 1..K and every fold.

Every model of the batch is built at the largest size K; each size is a replica with a fixed
0/1 latent mask (``ScaleModel.apply``'s ``latent_mask``): a masked unit is 0 on every row, so
it carries no information and its encoder weights receive no gradient from the losses. A model
with mask [1]*k + [0]*(K-k) therefore is a size-k model (its dead units' weights still take the
L1 penalty, which only shrinks them). ``fitting.fit_models`` trains all (size, fold) models at
once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..config import ScaleSpec
from ..data import ScaleData
from ..fitting import Replica, fit_models, replica_layout
from ..splits import Folds, make_folds
from ..training import hyperparameters


def size_masks(sizes: list[int], latent_size: int) -> np.ndarray:
    """(len(sizes), latent_size) float32: the first ``size`` units of each row live."""
    return (np.arange(latent_size)[None, :] < np.asarray(sizes)[:, None]).astype(np.float32)


def latent_size_scan(spec: ScaleSpec, data: ScaleData, sizes, *, folds: Folds | None = None,
                     epochs: int | None = None, group_columns: list[str] | None = None,
                     progress=None) -> pd.DataFrame:
    """Cross-validate ``spec`` at every latent size in ``sizes`` in one compiled program.

    data: the scale's rows (latent input groups already filled). folds: the CV masks to use
    (default: from the scale's cv settings; an all-rows model is left out). epochs: override
    the scale's training epochs. Returns one row per (latent_size, fold) with the losses of
    every head and the total at the selected epoch (training.select: last or best), columns
    ``train/HEAD``, ``val/HEAD``, ``train/total``, ``val/total``, plus ``epoch`` and
    ``seconds`` (wall time of the whole scan). Validation losses are the heads' losses
    (regression: raw units; reconstruction: standardised units; categorical: cross-entropy),
    without weight penalties. With cv kind "none" the val columns are NaN.
    """
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"latent sizes must be >= 1, got {sizes}")
    k_max = sizes[-1]
    training = dataclasses.replace(spec.training, checkpoint_every=0, ensemble=1,
                                   epochs=epochs or spec.training.epochs)
    spec_k = dataclasses.replace(spec, encoder=dataclasses.replace(spec.encoder,
                                                                   latent_size=k_max),
                                 training=training)
    if folds is None:
        folds = make_folds(spec_k, data, group_columns)
    n_cv = folds.n_cv or folds.n_models  # cv none: the single all-rows model
    cv_folds = Folds(folds.fold_of_row, folds.train[:n_cv], folds.val[:n_cv])
    hp = hyperparameters(spec_k)
    replicas = [Replica(spec.training.seed, hp, m) for m in size_masks(sizes, k_max)]
    label = f"{spec.name} scan 1..{k_max}" if sizes == list(range(1, k_max + 1)) \
        else f"{spec.name} scan"
    fit = fit_models(spec_k, data, replica_layout(spec_k, cv_folds, replicas),
                     progress=progress, label=label)
    state, history, seconds = fit.state, fit.history, fit.seconds
    reps, n_models = len(sizes), len(sizes) * n_cv
    if spec.training.select == "best":
        epoch = np.asarray(state.best_epoch)
    else:
        epoch = np.full(n_models, training.epochs - 1)
    has_val = folds.val[:n_cv].sum() > 0
    rows = {"latent_size": np.repeat(sizes, n_cv), "fold": np.tile(np.arange(n_cv), reps),
            "epoch": epoch + 1}
    at = history.at(epoch + 1)  # every model's losses at its selected epoch
    for split, terms in zip(("train", "val"), at):
        for term in sorted(terms):
            ok = split == "train" or has_val
            rows[f"{split}/{term}"] = terms[term] if ok else np.full(n_models, np.nan)
    table = pd.DataFrame(rows)
    table["seconds"] = seconds
    return table


def scan_summary(table: pd.DataFrame, frac: float | None = None) -> pd.DataFrame:
    """Per loss column (``val/...`` or, without validation, ``train/...``): mean, median and
    std over folds at each size, and the elbow (see ``analysis.elbow``) of the median curve.

    The elbow reads the median over folds: one fold stuck in a poor local optimum (it happens:
    a size-2 model on 2 hidden variables, 1 fold in 3, at 300 epochs) moves the mean of its
    size by far more than the gap the elbow rule measures, but not the median."""
    from .analysis import ELBOW_FRAC, elbow

    frac = ELBOW_FRAC if frac is None else frac
    split = "val" if table.filter(like="val/").notna().to_numpy().any() else "train"
    out = []
    for col in [c for c in table.columns if c.startswith(split + "/")]:
        g = table.groupby("latent_size")[col].agg(["mean", "median", "std"])
        e = elbow(g.index.to_numpy(), g["median"].to_numpy(), frac)
        for size, row in g.iterrows():
            out.append({"loss": col, "latent_size": int(size), "mean": row["mean"],
                        "median": row["median"], "std": 0.0 if np.isnan(row["std"]) else row["std"], "elbow": e})
    return pd.DataFrame(out)
