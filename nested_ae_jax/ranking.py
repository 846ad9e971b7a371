"""Ranking settings by a score, per race (column): the best first, a setting that diverged
(NaN or infinite score) after every one with a score. Numpy only, so the successive-halving
bookkeeping (``tune.halving``) and the nested-CV choice (``selection``) share it."""

from __future__ import annotations

import numpy as np

from .errors import NestedAEError


def top_k(scores: np.ndarray, allowed: np.ndarray | None, k: int, maximise: bool
          ) -> np.ndarray:
    """(k, J): per column of ``scores`` (S, J), its k best rows, best first: the ``allowed``
    (S, J) bool (default all) with a finite score (ties: the lower index), then the allowed
    that diverged (NaN or infinite), then the rest. Row 0 is the choice of a column (see
    :func:`finite_members` for the members that may be used)."""
    allowed = _allowed(scores, allowed)
    bad = ~np.isfinite(scores)
    key = np.where(bad, 0.0, -scores if maximise else scores)
    return np.lexsort((key, bad, ~allowed), axis=0)[:k]


def finite_members(top: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None,
                   what: str) -> list[np.ndarray]:
    """Per column of ``top`` (k, J) (:func:`top_k` of ``scores`` (S, J)), its rows that are
    allowed and have a finite score, best first: a setting that diverged never enters a
    choice or an ensemble. A column with none raises one NestedAEError naming ``what`` (the
    column's race, e.g. "outer fold 2")."""
    allowed = _allowed(scores, allowed)
    cols = np.arange(top.shape[1])
    ok = allowed[top, cols] & np.isfinite(scores[top, cols])
    empty = np.flatnonzero(~ok.any(axis=0))
    if empty.size:
        j = int(empty[0])
        raise NestedAEError(f"{what.format(j)}: all {int(allowed[:, j].sum())} setting(s) it "
                            "may choose diverged (metric NaN or infinite); lower "
                            "training.learning_rate or the weight penalties, or look for "
                            "extreme values in the data")
    return [top[ok[:, j], j] for j in cols]


def _allowed(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """``allowed`` (S, J) bool, or every row of ``scores`` when None."""
    return np.ones(scores.shape, bool) if allowed is None else allowed
