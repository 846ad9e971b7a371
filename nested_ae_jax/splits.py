"""Cross-validation fold assignment: one fold id per row (the fold where the row is validation).

Folds reproduce scikit-learn's splitters exactly (fold ``f`` = the ``f``-th split's test indices),
so results stay comparable with the paper's ``KFold(5, shuffle=True, random_state=0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import ScaleSpec
from .data import ScaleData, input_group_columns, numeric_block
from .errors import ConfigError, DataError, did_you_mean

KINDS = ("kfold", "group", "stratified")


def assign_folds(
    n_rows: int,
    *,
    kind: str,
    n_splits: int,
    shuffle: bool = True,
    random_state: int | None = 0,
    groups: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Fold ids, int32 (n_rows,): entry i is the fold in which row i is a validation row.

    ``kind``: "kfold" (``KFold``), "group" (``GroupKFold`` on ``groups`` (n_rows,), any hashable
    values; no group is split across folds) or "stratified" (``StratifiedKFold`` on integer
    ``labels`` (n_rows,); see :func:`bin_target` for a continuous target). ``random_state`` is
    ignored when ``shuffle`` is False.
    """
    if kind not in KINDS:
        hint = did_you_mean(kind, KINDS)
        raise ConfigError(f"unknown split kind '{kind}'{hint}; use one of {', '.join(KINDS)}")
    if int(n_splits) != n_splits or n_splits < 2:
        raise DataError(f"n_splits={n_splits} is invalid; use an integer n_splits >= 2")
    if n_rows < n_splits:
        raise DataError(f"only {n_rows} rows for n_splits={n_splits} folds; use more rows or fewer folds")
    n_splits, rs = int(n_splits), (random_state if shuffle else None)
    if kind == "kfold":
        return kfold_ids(n_rows, n_splits, shuffle, rs)
    # imported here: scikit-learn takes over a second to import (scipy.stats)
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    dummy = np.zeros((n_rows, 1))
    if kind == "group":
        codes = _codes(_column(groups, "groups", kind, n_rows))
        n_groups = int(codes.max()) + 1
        if n_groups < n_splits:
            raise DataError(
                f"only {n_groups} distinct groups for n_splits={n_splits} folds; "
                "use fewer folds or finer groups"
            )
        splits = GroupKFold(n_splits, shuffle=shuffle, random_state=rs).split(dummy,
                                                                              groups=codes)
    else:
        lab = _column(labels, "labels", kind, n_rows)
        if lab.dtype.kind == "f" and not np.all(np.isfinite(lab) & (lab == np.round(lab))):
            raise DataError(
                "stratified split needs class labels, got a continuous target; "
                "bin it with bin_target(y, n_bins)"
            )
        codes = _codes(lab)
        largest = np.bincount(codes).max()
        if largest < n_splits:
            raise DataError(
                f"no label class has n_splits={n_splits} members (largest has {largest}); "
                "use fewer folds or bins"
            )
        splits = StratifiedKFold(n_splits, shuffle=shuffle, random_state=rs).split(dummy, codes)
    fold_ids = np.full(n_rows, -1, dtype=np.int32)
    for f, (_, valid) in enumerate(splits):
        fold_ids[valid] = f
    assert (fold_ids >= 0).all(), "every row must be a validation row once"
    return fold_ids


def kfold_ids(n_rows: int, n_splits: int, shuffle: bool, random_state: int | None
              ) -> np.ndarray:
    """Fold ids (n_rows,) int32 of scikit-learn's ``KFold(n_splits, shuffle=shuffle,
    random_state=random_state)``: the rows in the order of ``RandomState(random_state)
    .shuffle`` (the global one when None), cut into consecutive folds, the first
    n_rows % n_splits one row longer (tests/test_splits.py compares them). Without importing
    scikit-learn, which costs ``nested-ae train`` over a second."""
    order = np.arange(n_rows)
    if shuffle:
        rng = np.random.mtrand._rand if random_state is None else \
            np.random.RandomState(random_state)
        rng.shuffle(order)
    sizes = np.full(n_splits, n_rows // n_splits)
    sizes[:n_rows % n_splits] += 1
    fold_ids = np.empty(n_rows, np.int32)
    fold_ids[order] = np.repeat(np.arange(n_splits, dtype=np.int32), sizes)
    return fold_ids


def _column(values: np.ndarray | None, name: str, kind: str, n_rows: int) -> np.ndarray:
    """Checks a per-row array (n_rows,) passed for ``kind``."""
    if values is None:
        raise DataError(f"split kind '{kind}' needs {name}: pass one value per row")
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n_rows:
        raise DataError(
            f"{name} has shape {arr.shape} but the data has {n_rows} rows; pass one value per row"
        )
    return arr


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer codes (n,) of 1-D values, numbered in sorted order when sortable (as np.unique)."""
    try:
        return pd.factorize(values, sort=True, use_na_sentinel=False)[0].astype(np.int64)
    except TypeError:  # unsortable mix of types: first-appearance order
        return pd.factorize(values, use_na_sentinel=False)[0].astype(np.int64)


def groups_from_rows(values: np.ndarray) -> np.ndarray:
    """Group id per row, int64 (n_rows,), for values (n_rows, n_cols) or (n_rows,) of any dtype.

    Rows equal in every column (NaN equals NaN) share an id; ids are numbered 0, 1, ... in order
    of first appearance.
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"groups_from_rows needs a 2-D table of rows, got shape {arr.shape}")
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.stack([pd.factorize(col, use_na_sentinel=False)[0] for col in arr.T], axis=1)
    _, first, inverse = np.unique(cols, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def bin_target(y: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bins of a 1-D finite target y (n,), int64 labels 0..m-1 for stratification.

    Edges are the ``n_bins``-quantiles of y; tied edges are merged, so heavily tied targets get
    m < n_bins bins (never an empty bin).
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"bin_target needs a non-empty 1-D target, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise DataError("target has NaN or infinite values; drop or impute them before binning")
    if int(n_bins) != n_bins or n_bins < 1:
        raise DataError(f"n_bins={n_bins} is invalid; use an integer >= 1")
    inner = np.unique(np.quantile(y, np.linspace(0, 1, int(n_bins) + 1)[1:-1]))
    bins = np.searchsorted(inner, y, side="right")
    return np.unique(bins, return_inverse=True)[1].reshape(-1).astype(np.int64)


def fold_masks(fold_ids: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, valid) masks, each (n_splits, n_rows), from fold ids (n_rows,)."""
    ids = np.asarray(fold_ids)
    if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= n_splits)):
        raise DataError(
            f"fold ids must be a 1-D array of integers in 0..{n_splits - 1}; "
            "recompute them with assign_folds"
        )
    valid = ids[None, :] == np.arange(n_splits)[:, None]
    return ~valid, valid


@dataclass
class Folds:
    """Row masks of the models trained together: the CV folds, then (has_full) one model on
    all rows. fold_of_row: (N,) validation fold of each row (-1: none, cv.kind = none);
    train/val: (models, N) float32."""

    fold_of_row: np.ndarray
    train: np.ndarray
    val: np.ndarray
    has_full: bool = False

    @property
    def n_models(self) -> int:
        return self.train.shape[0]

    @property
    def n_cv(self) -> int:
        """Models that are cross-validation folds (the first n_cv)."""
        return self.n_models - int(self.has_full)

    @staticmethod
    def from_fold_ids(fold_of_row: np.ndarray, n_splits: int, with_full: bool = False
                      ) -> "Folds":
        """Masks of ``n_splits`` folds from fold ids (N,) (and an all-rows model)."""
        n = len(fold_of_row)
        train, val = fold_masks(fold_of_row, n_splits)
        if with_full:
            train = np.concatenate([train, np.ones((1, n), bool)])
            val = np.concatenate([val, np.zeros((1, n), bool)])
        return Folds(np.asarray(fold_of_row, np.int32), train.astype(np.float32),
                     val.astype(np.float32), has_full=with_full)

    @staticmethod
    def single(n_rows: int) -> "Folds":
        """One model on every row, no validation (cv.kind = none)."""
        return Folds(np.full(n_rows, -1, np.int32), np.ones((1, n_rows), np.float32),
                     np.zeros((1, n_rows), np.float32))


def make_folds(spec: ScaleSpec, data: ScaleData, group_columns: list[str] | None = None,
               with_full: bool = False) -> Folds:
    """Cross-validation masks from the scale's cv settings.

    group_columns: the raw columns that make up an encoder input row (for grouping identical
    input rows when cv.group_by is empty; default: the scale's own input columns). with_full:
    add a model trained on all rows (it feeds downstream scales when chain.feed = all_rows).
    """
    cv, n = spec.cv, data.n_rows
    if cv.kind == "none":
        return Folds.single(n)
    groups = labels = None
    if cv.kind == "group":
        cols = list(cv.group_by) or group_columns or input_group_columns(spec)
        missing = [c for c in cols if c not in data.frame.columns]
        if missing:
            raise DataError(f"{data.source}: cv.group_by column '{missing[0]}' not found")
        groups = groups_from_rows(data.frame[cols].to_numpy())
    if cv.kind == "stratified":
        col = cv.stratify_on or next(h for h in spec.heads if h.kind == "regression").target[0]
        labels = bin_target(numeric_block(data.frame, [col], data.source)[:, 0], cv.bins)
    fold_of_row = assign_folds(n, kind=cv.kind, n_splits=cv.n_splits, shuffle=cv.shuffle,
                               random_state=cv.random_state, groups=groups, labels=labels)
    return Folds.from_fold_ids(fold_of_row, cv.n_splits, with_full)
