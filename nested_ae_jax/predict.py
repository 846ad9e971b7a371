"""Predictions of a trained run on new rows: stored scalers and categories, no re-fitting.

For a chain, the rows need only the raw columns of the target scale's data file (the upstream
scales' inputs are read from it under the config's renames). Predictions are the mean over the
target scale's models (every fold of every ensemble member; ``fold`` picks one fold), each fed
by the upstream models that fed it in training, with their standard deviation
(``TrainedChain.predictions``: the same chain copies ``design`` and ``explain`` use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import NestedAEError
from .reports import head_columns, regression_columns

if TYPE_CHECKING:
    from .chain import TrainedChain


def predict_frame(run: "TrainedChain", frame: pd.DataFrame, *, scale: str | None = None,
                  fold: int | None = None, source: str = "<data>") -> pd.DataFrame:
    """Columns ``SCALE.HEAD`` (and ``.std`` over the target's models, ``.prob`` for
    categorical) for the target scale (default: the last) and every upstream scale on the
    same rows; ``SCALE.latent_j`` of the target scale when ``fold`` picks one fold."""
    target = run.target(scale)
    tgt = run.trained[target]
    if fold is not None and not 0 <= fold < tgt.n_cv:
        raise NestedAEError(f"--fold {fold}: scale '{target}' has folds 0..{tgt.n_cv - 1}")
    specs = run.specs
    predictions = run.predictions(frame, scale=target, fold=fold, source=source)
    cols: dict[str, np.ndarray] = {}
    for name, (mean, std) in predictions.items():
        spec = specs[name]
        cols.update(head_columns(spec, mean, None, run.trained[name].categories, f"{name}."))
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
