"""Latent-size scan: one compiled training program for every latent size 1..K and every fold.

Every model of the batch is built at the largest size K; a fixed 0/1 mask per model (carried in
the model's ``stats`` pytree under :data:`MASK_KEY`, since ``stats`` is the per-model,
non-trained part of a ``ModelBatch``) multiplies the weights and bias of the encoder's last
layer, so a masked unit outputs activation(0) for every row — a constant that carries no
information — and receives no gradient from the losses. A model with mask [1]*k + [0]*(K-k)
therefore is a size-k model (its dead units still take the L1 penalty, which only shrinks
those unused weights). ``training.train_models`` vmaps over all (size, fold) models at once.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..config import ScaleSpec
from ..data import input_group_columns
from ..model import ScaleModel, scale_model
from ..runner import (Folds, ScaleData, fit_input_stats, make_folds, model_batch,
                      progress_printer, scale_dims)
from ..training import train_models

MASK_KEY = "__latent_mask__"


@functools.cache
def masked_scale_model(base: ScaleModel) -> ScaleModel:
    """``base`` with a latent mask read from ``stats[MASK_KEY]`` ((L,) 0/1; absent = all
    units live): the encoder's last layer columns of masked units are multiplied by 0.
    Cached, so repeated scans of one architecture reuse the compiled training program."""
    def apply(params, stats, inputs, **kwargs):
        stats = dict(stats)
        mask = stats.pop(MASK_KEY, None)
        if mask is not None:
            enc = list(params["encoder"])
            enc[-1] = {"w": enc[-1]["w"] * mask, "b": enc[-1]["b"] * mask}
            params = {**params, "encoder": enc}
        return base.apply(params, stats, inputs, **kwargs)

    return base._replace(apply=apply)


def size_masks(sizes: list[int], latent_size: int, n_folds: int) -> np.ndarray:
    """(len(sizes) * n_folds, latent_size) float32: size-major, fold-minor model order."""
    per_size = (np.arange(latent_size)[None, :] < np.asarray(sizes)[:, None])
    return np.repeat(per_size, n_folds, axis=0).astype(np.float32)


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
    training = dataclasses.replace(spec.training, checkpoint_every=0,
                                   epochs=epochs or spec.training.epochs)
    spec_k = dataclasses.replace(spec, encoder=dataclasses.replace(spec.encoder,
                                                                   latent_size=k_max),
                                 training=training)
    if folds is None:
        folds = make_folds(spec_k, data, group_columns or input_group_columns(spec))
    n_cv = folds.n_cv or folds.n_models  # cv none: the single all-rows model
    reps = len(sizes)
    tiled = Folds(folds.fold_of_row, np.tile(folds.train[:n_cv], (reps, 1)),
                  np.tile(folds.val[:n_cv], (reps, 1)))
    stats = fit_input_stats(spec_k, data, tiled)
    stats[MASK_KEY] = size_masks(sizes, k_max, n_cv)
    batch = model_batch(spec_k, tiled, stats)
    model = masked_scale_model(scale_model(spec_k, scale_dims(spec_k, data)))
    arrays = {"inputs": jax.tree.map(jnp.asarray, data.inputs),
              "targets": jax.tree.map(jnp.asarray, data.targets)}
    printer = progress_printer(f"{spec.name} scan 1..{k_max}" if sizes == list(
        range(1, k_max + 1)) else f"{spec.name} scan", training.epochs, progress)
    start = time.perf_counter()
    state, history = train_models(model, arrays, batch, on_chunk=printer)
    seconds = time.perf_counter() - start
    n_models = reps * n_cv
    if spec.training.select == "best":
        epoch = np.asarray(state.best_epoch)
    else:
        epoch = np.full(n_models, training.epochs - 1)
    has_val = folds.val[:n_cv].sum() > 0
    rows = {"latent_size": np.repeat(sizes, n_cv), "fold": np.tile(np.arange(n_cv), reps),
            "epoch": epoch + 1}
    for key in sorted(history):
        values = np.asarray(history[key])[np.arange(n_models), epoch]
        if key.startswith("val/") and not has_val:
            values = np.full(n_models, np.nan)
        rows[key] = values
    table = pd.DataFrame(rows)
    table["seconds"] = seconds
    return table


def scan_summary(table: pd.DataFrame, frac: float | None = None) -> pd.DataFrame:
    """Per loss column (``val/...`` or, without validation, ``train/...``): mean and std over
    folds at each size, and the elbow (see ``analysis.elbow``)."""
    from .analysis import ELBOW_FRAC, elbow

    frac = ELBOW_FRAC if frac is None else frac
    split = "val" if table.filter(like="val/").notna().to_numpy().any() else "train"
    out = []
    for col in [c for c in table.columns if c.startswith(split + "/")]:
        g = table.groupby("latent_size")[col].agg(["mean", "std"])
        e = elbow(g.index.to_numpy(), g["mean"].to_numpy(), frac)
        for size, row in g.iterrows():
            out.append({"loss": col, "latent_size": int(size), "mean": row["mean"],
                        "std": 0.0 if np.isnan(row["std"]) else row["std"], "elbow": e})
    return pd.DataFrame(out)
