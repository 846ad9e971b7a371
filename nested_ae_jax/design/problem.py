"""The problem: a request as arrays over the heads, its score, violations and the table.

:func:`make_problem` turns objective terms and bounds into a :class:`Problem` over a
:class:`~.adaptor.Designer`'s heads; :func:`score_np`, :func:`violation_np` and
:func:`ranking_key` judge evaluated heads; :func:`candidate_table` cleans (fractions under
:data:`SNAP` zeroed), re-evaluates, hard-checks (bounds, site sums, exclusions, cap, device
choices), de-duplicates and ranks candidates, so every reported number belongs to the reported
fractions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..composition import CompositionSpace
from .adaptor import Designer
from .objectives import KINDS, Constraint, DesignError, Objective, as_constraints, as_objectives
from .variables import Variables

SNAP = 0.01  # fractions below this are zeroed at the end (1 % resolution)
DEDUPE = 0.05  # candidates whose fractions round to the same multiple of this are one


@dataclass
class Problem:
    """Objective and bounds as arrays over the Designer's heads (shapes fixed per request)."""

    obj_index: np.ndarray
    obj_kind: np.ndarray
    obj_weight: np.ndarray
    obj_value: np.ndarray
    lower: np.ndarray  # (n_heads,) -inf where none
    upper: np.ndarray
    objectives: list[Objective]
    constraints: list[Constraint]


def make_problem(d: Designer, objective: Any, constraints: Any) -> Problem:
    """Objective terms and bounds as arrays over ``d.heads``.

    Args: objective: 'SCALE.HEAD', an :class:`Objective` or a list (see
    :func:`.objectives.parse_objective`); constraints: strings or :class:`Constraint`.
    Returns: :class:`Problem` (DesignError on an unknown head or an empty feasible range)."""
    objs = as_objectives(objective)
    cons = as_constraints(constraints)
    lower = np.full(len(d.heads), -np.inf)
    upper = np.full(len(d.heads), np.inf)
    for c in cons:
        i = d.head_index(c.head)
        if c.lower is not None:
            lower[i] = max(lower[i], c.lower)
        if c.upper is not None:
            upper[i] = min(upper[i], c.upper)
        if lower[i] > upper[i]:
            raise DesignError(f"constraints on {c.head} leave no feasible value "
                              f"({lower[i]:g} > {upper[i]:g})")
    return Problem(np.array([d.head_index(o.head) for o in objs], np.int32),
                   np.array([KINDS[o.kind] for o in objs], np.int32),
                   np.array([o.weight for o in objs], np.float32),
                   np.array([o.value for o in objs], np.float32), lower, upper, objs, cons)


def score_jax(heads, idx, kind, weight, value, xp=jnp):
    """Traceable score (...,) of heads (..., n_heads) for objective arrays (n_terms,) (index,
    kind code, weight, target value); targets by a smoothed absolute difference."""
    h = heads[..., idx]
    soft = xp.sqrt((h - value) ** 2 + 1e-6)
    term = xp.where(kind == 0, h, xp.where(kind == 1, -h, -soft))
    return (weight * term).sum(-1)


def score_np(p: Problem, heads: np.ndarray) -> np.ndarray:
    """Score (N,) float64 of heads (N, n_heads): the weighted sum of the objective terms."""
    h = heads[:, p.obj_index].astype(np.float64)
    term = np.where(p.obj_kind == 0, h, np.where(p.obj_kind == 1, -h,
                                                 -np.abs(h - p.obj_value)))
    return (p.obj_weight * term).sum(-1)


def violation_np(p: Problem, heads: np.ndarray) -> np.ndarray:
    """Largest amount (N,) by which a bound is missed by heads (N, n_heads), in the head's
    units (0: all hold; inf where a bounded head is NaN)."""
    with np.errstate(invalid="ignore"):
        v = np.maximum(np.maximum(p.lower - heads, heads - p.upper), 0.0)
    return np.nan_to_num(v, nan=np.inf).max(axis=-1) if v.shape[-1] else np.zeros(len(heads))


def ranking_key(p: Problem, heads: np.ndarray) -> np.ndarray:
    """Sort key (N,) of heads (N, n_heads), larger first: feasible candidates by score, then
    infeasible ones by how far they miss (smaller first); non-finite last."""
    viol = violation_np(p, heads)
    key = np.where(viol == 0, score_np(p, heads), -1e30 - viol)
    return np.where(np.isfinite(heads).all(1) & np.isfinite(key), key, -np.inf)


def _clean(fractions: np.ndarray, space: CompositionSpace) -> np.ndarray:
    """Fractions under :data:`SNAP` zeroed, each site renormalised (float64)."""
    f = np.asarray(fractions, np.float64).copy()
    f[f < SNAP] = 0.0
    for sl in space.site_slices().values():
        f[:, sl] /= f[:, sl].sum(axis=1, keepdims=True)
    return f


def candidate_table(d: Designer, p: Problem, v: Variables, fractions: np.ndarray,
                    codes: np.ndarray, extra: dict | None = None, dedupe: bool = True,
                    evaluated: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Clean, re-evaluate, hard-check, de-duplicate and rank compositions; one row each.

    Args: fractions (N, n_ions); codes (N, n_cats) int; extra: more columns ((N,) each);
    dedupe: keep one of the candidates whose fractions round to the same multiple of
    :data:`DEDUPE` (with the same codes); evaluated: heads (N, n_heads) and reconstruction
    errors (N, n_rec) of already cleaned ``fractions`` (else evaluated here).
    Returns: the table ranked best first: ``rank``, ``formula``, one column per ion, per
    device choice and per head, ``score``, ``ood.*``, ``violation``, ``feasible``, extra."""
    space = d.space
    f = _clean(fractions, space)
    heads, recon = d.evaluate(f, codes) if evaluated is None else evaluated
    score = score_np(p, heads)
    viol = violation_np(p, heads)
    slices = space.site_slices()
    sums_ok = np.all([np.abs(f[:, sl].sum(1) - 1) <= 1e-6 for sl in slices.values()], axis=0)
    excl_ok = (f[:, ~v.allowed] == 0).all(axis=1) if (~v.allowed).any() else \
        np.ones(len(f), bool)
    cap_ok = np.ones(len(f), bool)
    if v.cap is not None:
        for sl in slices.values():
            cap_ok &= (f[:, sl] > 0).sum(1) <= v.cap
    combo_ok = (codes[:, None, :] == v.combos[None]).all(-1).any(-1) if len(d.cats) else \
        np.ones(len(f), bool)
    finite = np.isfinite(heads).all(axis=1)
    feasible = (viol == 0) & sums_ok & excl_ok & cap_ok & combo_ok & finite

    cols: dict[str, Any] = {"rank": 0, "formula": [space.formula(x) for x in f]}
    for j, ion in enumerate(space.ions):
        cols[ion] = f[:, j]
    for k, c in enumerate(d.cats):
        cols[c.column] = np.array(c.labels, dtype=object)[codes[:, k]]
    for j, name in enumerate(d.heads):
        cols[name] = heads[:, j].astype(np.float64)
    cols["score"] = score
    cols.update(d.ood_columns(f, recon))
    cols["violation"] = viol
    cols["feasible"] = feasible
    if extra:
        cols.update(extra)
    table = pd.DataFrame(cols)
    table["_key"] = [tuple(np.round(x / DEDUPE).astype(int)) + tuple(c)
                     for x, c in zip(f, codes)]
    table = table.sort_values(["feasible", "score"], ascending=[False, False], kind="stable")
    if dedupe:
        table = table.drop_duplicates("_key", keep="first")
    table = table.drop(columns="_key").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def format_table(d: Designer, table: pd.DataFrame, top: int = 10) -> str:
    """The ``top`` rows of a candidate table as text: formula, device choices, heads, OOD
    score, feasibility."""
    cols = ["rank", "formula", *[c.column for c in d.cats], *d.heads, "score"]
    cols += [c for c in ("ood.score",) if c in table.columns] + ["feasible"]
    view = table[cols].head(top)
    return view.to_string(index=False, float_format=lambda v: f"{v:.3f}")
