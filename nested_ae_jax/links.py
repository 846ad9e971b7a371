"""Which rows of different scales are the same entity, and folds that respect it.

Two scales are *linked* when one takes the other's latent. A row of the downstream file and a
row of the upstream file are the same entity when they agree on the link columns
(``chain.link``; default: the upstream scale's own input columns, found in the downstream file
through the ``rename`` tables, i.e. the same composition); numeric values agree within
``chain.link_tolerance`` (relative). Rows of one scale with identical link values are one
entity too. Entities are the connected components of these relations over every scale of the
chain (:func:`link_entities`).

With ``chain.split = "matched"`` folds are dealt once per entity (:func:`matched_folds`, the
first linked scale's cv settings dealing entities as KFold deals rows) and shared by every
linked scale, and the upstream model of fold k feeds the downstream models of fold k: no
downstream validation row gets its latent from a model that trained on the same entity.
:func:`leaky_rows` counts, for any split, the downstream validation rows that do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Config
from .data import ScaleData
from .errors import DataError
from .nesting import column_maps, row_columns


def linked_scales(cfg: Config) -> list[str]:
    """Scales that take another's latent or feed one (config order)."""
    feeding = {u for s in cfg.scales for u in s.upstream}
    return [s.name for s in cfg.scales if s.upstream or s.name in feeding]


def matched(cfg: Config, name: str) -> bool:
    """Whether scale ``name`` shares matched folds with its linked scales."""
    return cfg.chain.split == "matched" and name in linked_scales(cfg) \
        and cfg.scale(name).cv.kind != "none"


def _key_table(frame: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: link column '{missing[0]}' not found (chain.link, or the "
                        "upstream inputs of the chain)")
    return frame[columns]


def _agree(a: pd.DataFrame, b: pd.DataFrame, tol: float) -> np.ndarray:
    """(len(a), len(b)) bool: rows equal on every column (numeric within ``tol``, relative)."""
    ok = np.ones((len(a), len(b)), bool)
    for ca, cb in zip(a.columns, b.columns):
        x = pd.to_numeric(a[ca], errors="coerce").to_numpy(np.float64)
        y = pd.to_numeric(b[cb], errors="coerce").to_numpy(np.float64)
        if np.isfinite(x).all() and np.isfinite(y).all():
            size = np.maximum(np.abs(x)[:, None], np.abs(y)[None, :])
            ok &= np.abs(x[:, None] - y[None, :]) <= tol * size + 1e-12
        else:
            ok &= a[ca].astype(str).to_numpy()[:, None] == b[cb].astype(str).to_numpy()[None, :]
    return ok


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def link_entities(cfg: Config, data: dict[str, ScaleData]) -> dict[str, np.ndarray]:
    """Entity id of every row of every scale in ``data`` ({SCALE: (N_s,) int64}); ids are
    shared across scales and numbered in order of first appearance (scales in config order).
    Rows of one scale are one entity when their raw input rows (own and upstream columns) are
    identical or when they agree on the link columns of a link; rows of linked scales when
    they agree on the link columns."""
    specs = cfg.specs
    names = [n for n in specs if n in data]
    keys, offsets, total = {}, {}, 0
    for name in names:  # one node per distinct raw input row
        cols = row_columns(specs, name)
        keys[name] = _codes(_key_table(data[name].frame, cols, data[name].source)) if cols \
            else np.arange(data[name].n_rows)
        offsets[name] = total
        total += int(keys[name].max()) + 1
    uf = _UnionFind(total)
    for down in names:
        for up in [u for u in specs[down].upstream if u in data]:
            cmap = column_maps(specs, down)[up]  # {column in up's file: column in down's}
            up_cols = list(cfg.chain.link) or list(cmap)
            a = _key_table(data[up].frame, up_cols, data[up].source)
            b = _key_table(data[down].frame, [cmap.get(c, c) for c in up_cols],
                           data[down].source)
            ca, cb = _codes(a), _codes(b)
            ia, ib = _first_rows(ca), _first_rows(cb)
            for name, codes, first in ((up, ca, ia), (down, cb, ib)):  # same link values
                for row, code in enumerate(codes):
                    uf.union(offsets[name] + keys[name][row],
                             offsets[name] + keys[name][first[code]])
            match = _agree(a.iloc[ia], b.iloc[ib], cfg.chain.link_tolerance)
            for i, j in zip(*np.nonzero(match)):
                uf.union(offsets[up] + keys[up][ia[i]], offsets[down] + keys[down][ib[j]])
    roots = np.concatenate([[uf.find(offsets[n] + k) for k in keys[n]] for n in names])
    ids = pd.factorize(roots)[0].astype(np.int64)
    bounds = np.cumsum([0] + [len(keys[n]) for n in names])
    return {n: ids[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}


def _codes(table: pd.DataFrame) -> np.ndarray:
    """Integer code per row; identical rows share one."""
    return pd.factorize(pd.MultiIndex.from_frame(table.astype(str)))[0]


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Index of the first row of each code (codes numbered 0, 1, ... by first appearance)."""
    return np.unique(codes, return_index=True)[1]


def matched_folds(cfg: Config, entities: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fold id of every row of every matched scale: entities dealt into folds with the first
    linked scale's cv (n_splits, shuffle, random_state) as KFold deals rows, so a chain whose
    scales read the same file keeps the folds each scale would have on its own."""
    from .splits import assign_folds

    names = [n for n in linked_scales(cfg) if matched(cfg, n) and n in entities]
    if not names:
        return {}
    cv = cfg.scale(names[0]).cv
    n_entities = int(max(entities[n].max() for n in names)) + 1
    if n_entities < cv.n_splits:
        raise DataError(f"chain.split = matched: only {n_entities} linked entities for "
                        f"{cv.n_splits} folds; use fewer folds")
    fold_of_entity = assign_folds(n_entities, kind="kfold", n_splits=cv.n_splits,
                                  shuffle=cv.shuffle, random_state=cv.random_state)
    return {n: fold_of_entity[entities[n]].astype(np.int32) for n in names}


def leaky_rows(down_entities: np.ndarray, down_val: np.ndarray,
               feeders: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Downstream validation rows whose latent came from a model trained on the same entity.

    down_entities: (N,) entity of each downstream row; down_val: (M, N) validation masks of
    the downstream models; feeders: per upstream scale (models (M, K) positions feeding each
    downstream model, (M_up, N_up) train masks x entity ids of the upstream rows, as a pair
    (positions, trained) with trained (M_up, E) bool: model trained on entity e).
    """
    leaky = np.zeros(len(down_entities), bool)
    for positions, trained in feeders:
        for m in range(down_val.shape[0]):
            seen = trained[np.asarray(positions[m])].any(axis=0)  # (E,)
            rows = down_val[m] > 0
            leaky[rows] |= seen[down_entities[rows]]
    return int(leaky.sum())


def trained_entities(train: np.ndarray, entities: np.ndarray, n_entities: int) -> np.ndarray:
    """(M, E) bool: model m trained on a row of entity e."""
    out = np.zeros((train.shape[0], n_entities), bool)
    for m in range(train.shape[0]):
        out[m, entities[train[m] > 0]] = True
    return out
