"""Figures of the explanations that ``plots`` does not draw: latent activity bars and sorted
importance bars (fresh matplotlib Figures with an Agg canvas, like ``plots``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    return fig


def activity_figure(table: pd.DataFrame, title: str):
    """Two bar panels per latent: std and mean |value| over the data; inactive grey.

    Args: table: one model's rows of :func:`tables.activity_table` (L rows: latent, std,
    mean_abs, active); title: the figure's title.
    Returns: a matplotlib Figure.
    """
    fig = _figure((max(5.0, 0.45 * len(table) + 2.0), 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    colours = np.where(table["active"], "C0", "0.7")
    ax1.bar(x, table["std"], color=colours)
    ax1.set_ylabel("std over rows")
    ax2.bar(x, table["mean_abs"], color=colours)
    ax2.set_ylabel("mean |value| over rows")
    ax2.set_xticks(x, [s.replace("latent_", "") for s in table["latent"]])
    ax2.set_xlabel("latent unit (grey: inactive)")
    for ax in (ax1, ax2):
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    return fig


def bar_figure(names, values, title: str, xlabel: str, signed=None):
    """Horizontal bars sorted by value (largest on top); optional dots for a signed value.

    Args: names: (P,) bar labels; values: (P,) bar lengths; signed: None or (P,) dots.
    Returns: a matplotlib Figure.
    """
    order = np.argsort(np.asarray(values))
    names = [names[i] for i in order]
    fig = _figure((6.4, max(2.5, 0.3 * len(names) + 1.2)))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y, np.asarray(values)[order], color="C0", alpha=0.8, label=xlabel)
    if signed is not None:
        ax.scatter(np.asarray(signed)[order], y, color="C3", zorder=3, s=18,
                   label="signed mean")
        ax.axvline(0, color="0.3", lw=0.8)
        ax.legend(fontsize="small", loc="lower right")
    ax.set_yticks(y, names, fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


__all__ = ["activity_figure", "bar_figure"]
