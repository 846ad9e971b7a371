"""Campaign results -> campaign.csv, summary.md and a box plot (written atomically)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from .campaign import CampaignResult

CSV, SUMMARY, BOX_PLOT = "campaign.csv", "summary.md", "campaign_box.png"


def results_frame(results: Mapping[str, CampaignResult]) -> pd.DataFrame:
    """One row per (method, trial): trial, method, found, share (of the pool revealed when the
    best was found, 0-1; NaN if never found), revealed, rounds, pool."""
    parts = []
    for name, r in results.items():
        parts.append(pd.DataFrame({
            "trial": np.arange(len(r.share)), "method": name, "found": r.found,
            "share": r.share, "revealed": r.revealed, "rounds": r.rounds, "pool": r.pool_size,
        }))
    return pd.concat(parts, ignore_index=True)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method (in order of appearance): trials, found, and the share explored in %:
    mean, median, quartiles, min, max; mean rounds."""
    rows = []
    for name, g in frame.groupby("method", sort=False):
        s = 100 * g.loc[g["found"], "share"].to_numpy(float)
        q = np.percentile(s, [0, 25, 50, 75, 100]) if s.size else [np.nan] * 5
        rows.append({"method": name, "trials": len(g), "found": int(g["found"].sum()),
                     "mean %": s.mean() if s.size else np.nan, "median %": q[2],
                     "q1 %": q[1], "q3 %": q[3], "min %": q[0], "max %": q[4],
                     "mean rounds": g.loc[g["found"], "rounds"].mean()})
    return pd.DataFrame(rows)


def summary_markdown(frame: pd.DataFrame, context: Mapping[str, object] | None = None) -> str:
    """summary.md: what was run (``context``: key -> value lines) and the per-method table."""
    lines = ["# Simulated campaigns", ""]
    for key, value in (context or {}).items():
        lines.append(f"- {key}: {value}")
    if context:
        lines.append("")
    lines.append("Share of the pool measured before the best candidate was found (initial picks "
                 "included); lower is better. Random picking needs about 50 %.")
    lines.append("")
    table = summary_table(frame)
    header = list(table.columns)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for _, row in table.iterrows():
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def box_plot_figure(frame: pd.DataFrame):
    """Box plot of the share explored (%) per method (a matplotlib Figure, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(frame["method"]))
    data = [100 * frame.loc[(frame["method"] == n) & frame["found"], "share"].to_numpy(float)
            for n in names]
    fig = Figure(figsize=(1.6 + 1.2 * len(names), 4.0), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("pool explored before the best was found (%)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    return fig


def write_report(out: str | os.PathLike, results: Mapping[str, CampaignResult],
                 context: Mapping[str, object] | None = None) -> dict[str, Path]:
    """Writes campaign.csv, summary.md and campaign_box.png into ``out`` (created); returns
    their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(results)
    paths = {"csv": out / CSV, "summary": out / SUMMARY, "box_plot": out / BOX_PLOT}
    io.atomic_write_csv(paths["csv"], frame)
    io.atomic_write_text(paths["summary"], summary_markdown(frame, context))
    io.atomic_savefig(paths["box_plot"], box_plot_figure(frame))
    return paths
