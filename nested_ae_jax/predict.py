"""Predictions of a trained run on new rows: stored scalers and categories, no re-fitting.

For a chain, the rows need only the raw columns of the target scale's data file (the upstream
scales' inputs are read from it under the config's renames). Predictions are the mean over the
target scale's cross-validation models, with their standard deviation; ``fold`` picks one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import nesting
from .errors import NestedAEError
from .evaluation import ensemble_summary
from .rundir import TrainedRun, head_columns, regression_columns


def predict_frame(run: TrainedRun, frame: pd.DataFrame, *, scale: str | None = None,
                  fold: int | None = None, source: str = "<data>") -> pd.DataFrame:
    """Columns ``SCALE.HEAD`` (and ``.std`` over the fold models, ``.prob`` for categorical)
    for the target scale (default: the last) and every upstream scale on the same rows;
    ``SCALE.latent_j`` of the target scale when ``fold`` picks one model."""
    cfg = run.config
    target = scale or cfg.scales[-1].name
    cfg.scale(target)  # error naming the scale if unknown
    specs = {s.name: s for s in cfg.scales}
    upto = [*nesting.upstream_of(cfg, target), target]
    loaded = run.scales
    inputs = nesting.chain_inputs({n: specs[n] for n in upto},
                                  {n: loaded[n].categories for n in upto}, frame, target, source)
    chain, cp = nesting.trained_chain(cfg, loaded, upto[:-1])
    cp = nesting.refit_transfer(cfg, chain, cp, inputs, target)
    upstream = jax.jit(chain.apply)(cp, inputs) if cp else {}

    tgt = loaded[target]
    n_models = tgt.n_cv
    if fold is not None and not 0 <= fold < n_models:  # n_models: CV folds
        raise NestedAEError(f"--fold {fold}: scale '{target}' has folds 0..{n_models - 1}")
    pick = nesting.model_indices(tgt.n_cv, tgt.has_full, specs[target].training.ensemble, fold)
    x = dict(inputs[target])
    for g in tgt.model.spec.inputs:
        if g.kind == "latent":
            x[g.name] = upstream[g.scale]["latent"]
    params = jax.tree.map(lambda a: jnp.asarray(a)[pick], tgt.params)
    stats = jax.tree.map(lambda a: jnp.asarray(a)[pick], tgt.stats)
    outputs = jax.jit(jax.vmap(lambda p, s: tgt.model.apply(p, s, x)))(params, stats)
    mean, std = ensemble_summary(tgt.model.spec, outputs)

    cols: dict[str, np.ndarray] = {}
    for n in upto[:-1]:
        cols.update(head_columns(specs[n], upstream[n], None, loaded[n].categories, f"{n}."))
    cols.update(head_columns(specs[target], mean, None, tgt.categories, f"{target}."))
    for h in specs[target].heads:
        if h.name in std and h.kind == "regression" and fold is None:
            s = np.asarray(std[h.name])
            cols.update({f"{target}.{n}.std": s[:, j]
                         for j, n in enumerate(regression_columns(h))})
        if h.kind == "categorical":
            cols[f"{target}.{h.name}.prob"] = np.exp(np.asarray(mean["heads"][h.name])).max(-1)
    if fold is not None:
        latent = np.asarray(mean["latent"])
        cols.update({f"{target}.latent_{j}": latent[:, j] for j in range(latent.shape[1])})
    return pd.DataFrame(cols, index=frame.index)
