"""Predictions of a trained run on new rows: stored scalers and categories, no re-fitting.

For a chain, the rows need only the raw columns of the target scale's data file (the upstream
scales' inputs are read from it under the config's renames). Predictions are the mean over the
target scale's models (every fold of every ensemble member; ``fold`` picks one fold), each fed
by the upstream models that fed it in training, with their standard deviation
(``trained.predict_rows``: the same path ``design`` and ``explain`` use).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import NestedAEError
from .reports import head_columns, regression_columns
from .store import TrainedRun
from .trained import predict_rows


def predict_frame(run: TrainedRun, frame: pd.DataFrame, *, scale: str | None = None,
                  fold: int | None = None, source: str = "<data>") -> pd.DataFrame:
    """Columns ``SCALE.HEAD`` (and ``.std`` over the target's models, ``.prob`` for
    categorical) for the target scale (default: the last) and every upstream scale on the
    same rows; ``SCALE.latent_j`` of the target scale when ``fold`` picks one fold."""
    cfg = run.config
    target = scale or cfg.scales[-1].name
    cfg.scale(target)  # error naming the scale if unknown
    tgt = run.scales[target]
    if fold is not None and not 0 <= fold < tgt.n_cv:
        raise NestedAEError(f"--fold {fold}: scale '{target}' has folds 0..{tgt.n_cv - 1}")
    specs = cfg.specs
    predictions, _ = predict_rows(run.scales, specs, cfg.chain, frame, target, source, fold)
    cols: dict[str, np.ndarray] = {}
    for name, (mean, std) in predictions.items():
        spec = specs[name]
        cols.update(head_columns(spec, mean, None, run.scales[name].categories, f"{name}."))
        if name != target:
            continue
        for h in spec.heads:
            if h.name in std and h.kind == "regression" and len(tgt.models(fold)) > 1:
                s = np.asarray(std[h.name])
                cols.update({f"{name}.{n}.std": s[:, j]
                             for j, n in enumerate(regression_columns(h))})
            if h.kind == "categorical":
                cols[f"{name}.{h.name}.prob"] = np.exp(np.asarray(mean.heads[h.name])).max(-1)
        if fold is not None:
            latent = np.asarray(mean.latent)
            cols.update({f"{name}.latent_{j}": latent[:, j] for j in range(latent.shape[1])})
    return pd.DataFrame(cols, index=frame.index)
