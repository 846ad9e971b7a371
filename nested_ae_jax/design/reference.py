"""The out-of-domain reference for design: the training rows of every scale as standardised
composition descriptors (re-read from the scales' data files) with the spread of their nearest
distances and of the target's reconstruction errors, and the ``ood.*`` columns of candidates
against it."""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import NestedAEError
from .forward import ChainForward


class Reference(NamedTuple):
    """rows {SCALE: unique standardised descriptor rows of its training file}; dist95 {SCALE:
    95th percentile of their nearest-other-row distance}; recon95 (n_rec,) 95th percentile of
    the target file's reconstruction errors (None: none)."""

    rows: dict
    dist95: dict
    recon95: np.ndarray | None = None


NO_REFERENCE = Reference({}, {}, None)


def build_reference(fwd: ChainForward) -> Reference:
    """Per scale: the unique standardised descriptor rows of its training file and the
    95th percentile of their nearest-other-row distance; reconstruction errors of the
    target file's rows (95th percentile per scale)."""
    from ..data import read_table
    rows_of: dict[str, np.ndarray] = {}
    dist95: dict[str, float] = {}
    recon95 = None
    mean, scale = fwd.descriptor_stats()
    for s in fwd.upto:
        spec = fwd.specs[s]
        try:
            frame = read_table(spec.data, spec.column_names)
            inputs = fwd.run.inputs(frame, scale=s, source=spec.data)
        except NestedAEError as err:
            print(f"design: no out-of-domain reference for scale '{s}': {err}",
                  file=sys.stderr)
            continue
        raw = np.concatenate([np.asarray(inputs[c.scale][c.group]) for c in fwd.groups
                              if c.scale in inputs and c.group in inputs[c.scale]], axis=1) \
            if all(c.scale in inputs for c in fwd.groups) else None
        if raw is None:
            continue
        rows = np.unique(np.round((raw - mean) / scale, 6), axis=0)
        rows_of[s] = rows
        d = _nearest(rows, rows, exclude_self=True)
        dist95[s] = float(np.quantile(d, 0.95)) if len(d) > 1 else float("nan")
        if s == fwd.target and fwd.recon_scales:
            inp = {k: {g: jnp.asarray(v) for g, v in grp.items()} for k, grp in inputs.items()}
            _, rec = jax.jit(fwd._forward_inputs)(fwd.params, inp)
            recon95 = np.quantile(np.asarray(rec), 0.95, axis=0)
    return Reference(rows_of, dist95, recon95)


def ood_columns(fwd: ChainForward, reference: Reference, fractions: np.ndarray,
                recon: np.ndarray) -> dict[str, np.ndarray]:
    """``ood.distance.S`` (to the nearest training composition of scale S, standardised
    descriptor units), ``ood.recon.S`` (reconstruction MAE, standardised units) and
    ``ood.score`` = the largest of these over its 95th percentile on training rows
    (> 1: further out than 95 % of the training data)."""
    cols: dict[str, np.ndarray] = {}
    ratios = []
    x = fwd.descriptors(fractions)
    for s, rows in reference.rows.items():
        d = _nearest(x, rows)
        cols[f"ood.distance.{s}"] = d
        ref = reference.dist95[s]
        if ref and math.isfinite(ref):
            ratios.append(d / ref)
    r95 = reference.recon95
    for k, s in enumerate(fwd.recon_scales):
        cols[f"ood.recon.{s}"] = recon[:, k]
        if r95 is not None and r95[k] > 0:
            ratios.append(recon[:, k] / r95[k])
    if ratios:
        cols["ood.score"] = np.max(np.stack(ratios), axis=0)
    return cols


def _nearest(x: np.ndarray, rows: np.ndarray, exclude_self: bool = False,
             chunk: int = 2048) -> np.ndarray:
    """Euclidean distance (N,) of each row of ``x`` (N, D) to its nearest row of ``rows``
    (M, D) (``exclude_self``: ignoring rows at distance 0)."""
    out = np.empty(len(x))
    r2 = (rows ** 2).sum(1)
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk]
        d2 = (xi ** 2).sum(1)[:, None] + r2[None] - 2 * xi @ rows.T
        if exclude_self:
            d2[d2 < 1e-12] = np.inf
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out
