"""Nested synthetic data whose intrinsic dimensions are known by construction (METHOD.md §6).

Hidden variables x = (x0, ..., x7) ~ U(-1, 1)^8, drawn independently per row.

Scale 1 (own descriptors depend on x0, x7; intrinsic dimension 2)::

    s1_f0 = x0            s1_f1 = x7               s1_f2 = x0*x7
    s1_f3 = sin(pi*x0)    s1_f4 = x7**2 - x0       s1_f5 = exp(x0 - 1)
    y1    = x0**2 + x7**2

Scale k >= 2 is built the same way from a link variable ``a`` shared with scale k-1 and two new
variables ``b, c`` (scale 2: a, b, c = x0, x1, x2; scale 3: a, b, c = x1, x3, x4; dimension 3)::

    sk_f0 = 2a + 3b    sk_f1 = a + c    sk_f2 = a**2    sk_f3 = b**2    sk_f4 = b*c
    sk_f5 = sin(pi*c)
    sk_kind = "a" if b >= 0 and c >= 0, "b" if b < 0 and c < 0, else "c"
    yk    = y(k-1)**2 + (b*c)**4

The frame of scale k carries, first, the descriptor columns (numeric and categorical) of every
earlier scale with the same values, as a device-level data file carries the composition columns,
then its own descriptors and its target. Targets of earlier scales are not carried.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import pandas as pd

from .errors import ConfigError

HIDDEN_VARS: dict[str, tuple[str, ...]] = {
    "scale1": ("x0", "x7"),
    "scale2": ("x0", "x1", "x2"),
    "scale3": ("x1", "x3", "x4"),
}
"""Hidden variables that each scale's OWN descriptor columns (and kind column) depend on."""

INTRINSIC_DIMS: dict[str, int] = {name: len(v) for name, v in HIDDEN_VARS.items()}
"""Intrinsic dimension of each scale's own descriptors: {"scale1": 2, "scale2": 3, "scale3": 3}."""

MAX_SCALES = len(HIDDEN_VARS)
N_HIDDEN = 8


def _scale_columns(
    k: int, x: pd.DataFrame, y_prev: np.ndarray | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]:
    """Own numeric descriptors {name: (n,)}, categorical kind (n,) or None, and target (n,)."""
    v = [x[name].to_numpy() for name in HIDDEN_VARS[f"scale{k}"]]
    if k == 1:
        x0, x7 = v
        feats = [x0, x7, x0 * x7, np.sin(np.pi * x0), x7**2 - x0, np.exp(x0 - 1.0)]
        return {f"s1_f{i}": f for i, f in enumerate(feats)}, None, x0**2 + x7**2
    a, b, c = v
    feats = [2 * a + 3 * b, a + c, a**2, b**2, b * c, np.sin(np.pi * c)]
    kind = np.where((b >= 0) & (c >= 0), "a", np.where((b < 0) & (c < 0), "b", "c")).astype(object)
    return {f"s{k}_f{i}": f for i, f in enumerate(feats)}, kind, y_prev**2 + (b * c) ** 4


@overload
def make_nested_data(
    n_rows: int = ..., *, n_scales: int = ..., noise: float = ..., seed: int = ...,
    return_hidden: Literal[False] = ...,
) -> dict[str, pd.DataFrame]: ...
@overload
def make_nested_data(
    n_rows: int = ..., *, n_scales: int = ..., noise: float = ..., seed: int = ...,
    return_hidden: Literal[True],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]: ...


def make_nested_data(
    n_rows: int = 500,
    *,
    n_scales: int = 2,
    noise: float = 0.0,
    seed: int = 0,
    return_hidden: bool = False,
) -> dict[str, pd.DataFrame] | tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Frames {"scale1": (n_rows, 7), "scale2": (n_rows, 14), "scale3": (n_rows, 21)} up to
    ``n_scales`` (1-3); see the module docstring for the formulas.

    ``noise``: Gaussian noise of std ``noise * std(column)`` is added to numeric descriptor
    columns only (targets and kind columns stay exact); a carried column has the same noisy
    values in every frame. Same ``seed`` -> identical frames; the hidden x do not depend on
    ``noise`` or ``n_scales``. ``return_hidden=True`` also returns the hidden x, (n_rows, 8),
    columns x0..x7.
    """
    if isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 1:
        raise ConfigError(f"n_rows={n_rows} is invalid; use an integer >= 1")
    if n_scales not in range(1, MAX_SCALES + 1):
        raise ConfigError(f"n_scales={n_scales} is invalid; use 1 to {MAX_SCALES}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ConfigError(
            f"noise={noise} is invalid; use a finite value >= 0 (a fraction of each column's std)"
        )
    rng = np.random.default_rng(seed)
    hidden = pd.DataFrame(
        rng.uniform(-1.0, 1.0, (int(n_rows), N_HIDDEN)), columns=[f"x{i}" for i in range(N_HIDDEN)]
    )
    frames: dict[str, pd.DataFrame] = {}
    carried: dict[str, np.ndarray] = {}
    y = None
    for k in range(1, n_scales + 1):
        feats, kind, y = _scale_columns(k, hidden, y)
        if noise > 0:
            feats = {n: f + rng.normal(0.0, noise * f.std(), f.shape) for n, f in feats.items()}
        own = dict(feats) if kind is None else {**feats, f"s{k}_kind": kind}
        frames[f"scale{k}"] = pd.DataFrame({**carried, **own, f"y{k}": y})
        carried.update(own)
    return (frames, hidden) if return_hidden else frames
