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


def _agree_pairs(a: pd.DataFrame, b: pd.DataFrame, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of rows of ``a`` and ``b`` equal on every column (numeric within ``tol``,
    relative: |x - y| <= tol max(|x|, |y|) + 1e-12; else as strings), each (K,) int64 sorted.

    A neighbour search: each column becomes one dimension of a Chebyshev k-d tree (numeric
    ones through a log-like map scaled so that agreeing values lie within 1, strings as
    integer codes 4 apart), candidate pairs within 1 are checked exactly. Time
    O((N + M) log(N + M) + candidates), memory O(N + M + candidates)."""
    from scipy.spatial import cKDTree

    dims_a, dims_b, exact = [], [], []
    for ca, cb in zip(a.columns, b.columns):
        x = pd.to_numeric(a[ca], errors="coerce").to_numpy(np.float64)
        y = pd.to_numeric(b[cb], errors="coerce").to_numpy(np.float64)
        if np.isfinite(x).all() and np.isfinite(y).all():
            exact.append((x, y))
            scaled = _tolerance_scale(x, y, tol)
            if scaled is not None:
                dims_a.append(scaled[0])
                dims_b.append(scaled[1])
        else:
            codes = pd.factorize(np.concatenate([a[ca].astype(str).to_numpy(),
                                                 b[cb].astype(str).to_numpy()]))[0] * 4.0
            dims_a.append(codes[:len(a)])
            dims_b.append(codes[len(a):])
    if not dims_a:  # no column narrows the search (tolerance >= 1): every pair is a candidate
        dims_a, dims_b = [np.zeros(len(a))], [np.zeros(len(b))]
    pairs = cKDTree(np.stack(dims_a, 1)).sparse_distance_matrix(
        cKDTree(np.stack(dims_b, 1)), 1.0 + 1e-9, p=np.inf, output_type="ndarray")
    i, j = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    keep = np.ones(len(i), bool)
    for x, y in exact:  # the exact test, as the dense comparison computes it
        xi, yj = x[i], y[j]
        keep &= np.abs(xi - yj) <= tol * np.maximum(np.abs(xi), np.abs(yj)) + 1e-12
    order = np.lexsort((j[keep], i[keep]))
    return i[keep][order], j[keep][order]


def _tolerance_scale(x: np.ndarray, y: np.ndarray, tol: float):
    """(x', y'): x, y mapped so that values agreeing within ``tol`` (relative, +1e-12) differ
    by at most 1, or None when the tolerance admits values of any size (tol >= 1) or the map
    overflows. Agreeing y lies within r(x) = (tol |x| + 1e-12) / (1 - tol) of x; the map is
    monotone (asinh, linear near 0 and logarithmic beyond 1e-12 / tol), and its largest step
    over [x - r, x + r] (padded for rounding) is half the unit."""
    if tol >= 1.0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if tol > 0:
            k = tol / 1e-12
            f = lambda v: np.arcsinh(k * v) / tol  # noqa: E731
        else:
            f = lambda v: v / 1e-12  # noqa: E731
        r = (tol * np.abs(x) + 1e-12) / (1.0 - tol) * (1 + 1e-6) + 1e-15
        fx, fy = f(x), f(y)
        step = np.maximum(f(x + r) - fx, fx - f(x - r))
        if not (np.isfinite(step).all() and np.isfinite(fy).all()) or len(step) == 0:
            return None
        # twice the largest step, and never under the rounding of the map itself
        unit = max(2.0 * float(step.max()),
                   64 * np.finfo(np.float64).eps * float(max(np.abs(fx).max(), np.abs(fy).max())))
    if unit <= 0:
        return None
    return fx / unit, fy / unit


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
    edges = []  # (2, K) node pairs: the same raw input row, link values, or agreeing rows
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
                edges.append(offsets[name] + np.stack([keys[name], keys[name][first[codes]]]))
            i, j = _agree_pairs(a.iloc[ia], b.iloc[ib], cfg.chain.link_tolerance)
            edges.append(np.stack([offsets[up] + keys[up][ia[i]],
                                   offsets[down] + keys[down][ib[j]]]))
    roots = _components(total, edges)
    ids = pd.factorize(np.concatenate([roots[offsets[n] + keys[n]] for n in names]))[0]
    ids = ids.astype(np.int64)
    bounds = np.cumsum([0] + [len(keys[n]) for n in names])
    return {n: ids[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}


def joint_groups(*labels: np.ndarray) -> np.ndarray:
    """(N,) int64 group of each row: rows sharing a label in any of ``labels`` (each (N,)
    ints, e.g. entities and cv.group_by groups) are one group (connected components),
    numbered in order of first appearance."""
    codes = [pd.factorize(np.asarray(a))[0] for a in labels]
    offsets = np.cumsum([0] + [int(c.max()) + 1 if len(c) else 0 for c in codes])
    edges = [np.stack([codes[0], offsets[i] + c]) for i, c in enumerate(codes)]
    roots = _components(int(offsets[-1]), edges)
    return pd.factorize(roots[codes[0]])[0].astype(np.int64)


def _components(n_nodes: int, edges: list[np.ndarray]) -> np.ndarray:
    """Connected component of each of ``n_nodes`` nodes (n_nodes,) given edge blocks (2, K)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.concatenate([np.zeros((2, 0), np.int64)] + [e.astype(np.int64) for e in edges], 1)
    graph = coo_matrix((np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])),
                       shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def _codes(table: pd.DataFrame) -> np.ndarray:
    """Integer code per row (n,) int64, numbered by first appearance; rows share one when
    every column's value prints the same (floats: the same bits, every NaN alike; others:
    the same text). Hashing, one column at a time: O(n) per column."""
    codes = np.zeros(len(table), np.int64)
    for column in table.columns:
        values = table[column]
        if isinstance(values.dtype, np.dtype) and values.dtype.kind == "f":
            x = values.to_numpy(np.float64)
            keys = x.view(np.int64).copy()
            keys[np.isnan(x)] = np.float64(np.nan).view(np.int64)
        elif isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub":
            keys = values.to_numpy()
        else:
            keys = values.astype(str).to_numpy()
        own = pd.factorize(keys, use_na_sentinel=False)[0].astype(np.int64)
        codes = pd.factorize(codes * (int(own.max(initial=0)) + 1) + own)[0].astype(np.int64)
    return codes


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
