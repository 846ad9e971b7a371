"""The record a comparison returns and the column names of its tables (kept apart from
:mod:`nested_ae_jax.compare` so that its modules import it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

SKLEARN_MODELS = ("random forest", "ridge", "mean")
Progress = Callable[[str], None]
TABLE_COLUMNS = ["target", "split", "model", "n", "mae", "rmse", "r2", "fold_mae_mean",
                 "fold_mae_std", "n_folds", "seconds"]
RECON_COLUMNS = ["data", "model", "seeds", "val_mae_mean", "val_mae_std", "train_mae_mean",
                 "train_mae_std", "seconds"]


@dataclass
class Comparison:
    """What :func:`compare` returns.

    table: one row per (target, split, model) (supervised) or per model (reconstruction).
    folds: {(split, scale): {model: (N,) validation fold of each row}}: the folds each model
    was scored on (all equal within a key; checked). fits: {split: FitResult} of the chain.
    kind: "supervised" or "reconstruction". notes: lines for the report (columns left out).
    settings: per tuned baseline, target, split, outer fold and target column, the setting
    its nested search chose (``compare --tune``; tuned_baselines.csv).
    """

    table: pd.DataFrame
    folds: dict = field(default_factory=dict)
    fits: dict = field(default_factory=dict)
    kind: str = "supervised"
    source: str = ""
    notes: list = field(default_factory=list)
    settings: list = field(default_factory=list)


def say(progress: Progress | None, line: str) -> None:
    if progress:
        progress(line)
