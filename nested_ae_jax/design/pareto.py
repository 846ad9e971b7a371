"""The Pareto front of two heads: epsilon-constraint runs over bands of one, and its figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..composition import CompositionSpace
from .adaptor import as_designer
from .objectives import DesignError, Objective, parse_objective
from .optimiser import optimise, random_starts, softmax_np
from .problem import candidate_table, make_problem

def direction(text: str) -> tuple[str, str]:
    """'min:atomic.gap' -> ('min', 'atomic.gap'); no prefix: 'max' (the objective language,
    :func:`~nested_ae_jax.objectives.parse_objective`; a Pareto axis has no target)."""
    o = parse_objective(text)
    if o.kind == "target" or o.weight != 1.0 or not o.head:
        raise DesignError(f"--pareto {text}: expected max:SCALE.HEAD or min:SCALE.HEAD")
    return o.kind, o.head


def pareto_front(run, x: str, y: str, constraints: Any = (), exclude: Iterable[str] = (), *,
                 fix: Any = None, max_ions_per_site: int | None = None, starts: int = 1024,
                 steps: int = 500, seed: int = 0, bands: int = 16,
                 space: CompositionSpace | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pareto front of two heads (``'min:atomic.gap'``, ``'max:device.pce'``; default max) by
    the epsilon-constraint method: the starts are split over ``bands`` bands of ``x`` (over
    its range in the random starting population) and each optimises ``y`` inside its band.
    Returns (front, all candidates), both ranked tables; the front is sorted by ``x``."""
    d = as_designer(run, space)
    (dx, hx), (dy, hy) = direction(x), direction(y)
    p = make_problem(d, Objective(hy, dy), constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    ix = d.head_index(hx)
    logits, mask, codes = random_starts(d, v, starts, seed)
    heads0, _ = d.evaluate(softmax_np(logits, mask, d.space), codes)
    a = max(np.nanquantile(heads0[:, ix], 0.01), p.lower[ix])
    b = min(np.nanquantile(heads0[:, ix], 0.99), p.upper[ix])
    edges = np.linspace(a, b, bands + 1)
    band = np.arange(starts) // max(1, math.ceil(starts / bands))
    band = np.minimum(band, bands - 1)
    lower = np.tile(p.lower, (starts, 1))
    upper = np.tile(p.upper, (starts, 1))
    lower[:, ix] = np.maximum(lower[:, ix], edges[band])
    upper[:, ix] = np.minimum(upper[:, ix], edges[band + 1])
    res = optimise(d, p, v, starts=starts, steps=steps, seed=seed, lower=lower, upper=upper)
    table = candidate_table(d, p, v, res.fractions, res.codes, evaluated=res.evaluated)
    feas = table[table["feasible"]]
    sx = feas[hx].to_numpy() * (1 if dx == "max" else -1)
    sy = feas[hy].to_numpy() * (1 if dy == "max" else -1)
    dominated = np.array([((sx >= a_) & (sy >= b_) & ((sx > a_) | (sy > b_))).any()
                          for a_, b_ in zip(sx, sy)], bool)
    front = feas[~dominated].sort_values(hx).reset_index(drop=True)
    front.attrs["pareto"] = {"x": hx, "y": hy, "x_direction": dx, "y_direction": dy}
    return front, table


def pareto_figure(front: pd.DataFrame, candidates: pd.DataFrame, x: str, y: str):
    """Scatter of the feasible candidates and the Pareto front, a few front points labelled
    with their formula (object API, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    feas = candidates[candidates["feasible"]]
    ax.scatter(feas[x], feas[y], s=6, c="0.75", label=f"feasible candidates ({len(feas)})")
    ax.plot(front[x], front[y], "o-", color="C3", ms=3.5, lw=1.2,
            label=f"Pareto front ({len(front)})")
    step = max(1, len(front) // 5)
    for _, r in front.iloc[::step].iterrows():
        ann = ax.annotate(r["formula"], (r[x], r[y]), fontsize=6, xytext=(4, 4),
                          textcoords="offset points", annotation_clip=True, clip_on=True)
        ann.set_in_layout(False)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{y} vs {x}", fontsize=10)
    return fig


def write_pareto(front: pd.DataFrame, candidates: pd.DataFrame, x: str, y: str,
                 prefix: str | Path) -> tuple[Path, Path]:
    """``PREFIX.csv`` (the front) and ``PREFIX.png`` (the figure), atomically."""
    from .. import io

    prefix = Path(prefix)
    csv, png = prefix.with_suffix(".csv"), prefix.with_suffix(".png")
    io.atomic_write_csv(csv, front)
    io.atomic_savefig(png, pareto_figure(front, candidates, x, y))
    return csv, png
