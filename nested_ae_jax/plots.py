"""Figures for NestedAE runs (matplotlib, headless).

Every function builds a fresh :class:`matplotlib.figure.Figure` through the object API with an
Agg canvas attached, so nothing touches pyplot's global state or the user's chosen backend,
and nothing leaks between calls. The functions never save: the caller decides where and how
(e.g. ``fig.savefig(tmp); os.replace(tmp, final)``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

__all__ = [
    "parity_figure",
    "learning_curves_figure",
    "latent_map_figure",
    "size_scan_figure",
    "heatmap_figure",
]

_QUALITATIVE = "tab10"
_QUALITATIVE_LARGE = "tab20"


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained", dpi=100)
    FigureCanvasAgg(fig)  # headless canvas, independent of the global backend
    return fig


def warm_up() -> None:
    """Draw one small figure to memory: matplotlib's fonts and renderer are loaded, so the
    next figure draws at its own cost (``nested-ae train`` runs this during the fit)."""
    fig = _new_figure((1.0, 1.0))
    fig.gca().set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")


def _categorical_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps[_QUALITATIVE if n <= 10 else _QUALITATIVE_LARGE]
    return [cmap(i % cmap.N) for i in range(n)]


def _marker_size(n: int) -> float:
    return float(np.clip(3000.0 / max(n, 1), 3.0, 30.0))


def _unit_suffix(unit: str) -> str:
    return f" ({unit})" if unit else ""


# --------------------------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------------------------


def parity_figure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    folds: np.ndarray | None,
    title: str,
    unit: str = "",
) -> Figure:
    """Predicted vs true scatter with a y = x line and a MAE / RMSE / R^2 text box.

    Metrics are per-sample and pooled over all points given. Pairs where either value is not
    finite are left out of the plot and the metrics, and the box says how many were dropped.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    f = None
    if folds is not None:
        f = np.asarray(folds).ravel()
        if f.shape != t.shape:
            raise ValueError(f"folds has {f.size} values but y_true has {t.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    n_dropped = int((~ok).sum())
    t, p = t[ok], p[ok]
    if f is not None:
        f = f[ok]

    fig = _new_figure((5.2, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    size = _marker_size(t.size)
    if f is None:
        ax.scatter(t, p, s=size, alpha=0.6, color="C0", edgecolors="none")
    else:
        labels = list(pd.unique(f))
        try:
            labels = sorted(labels)
        except TypeError:
            pass
        colours = _categorical_colours(len(labels))
        for lab, col in zip(labels, colours):
            sel = f == lab
            ax.scatter(t[sel], p[sel], s=size, alpha=0.6, color=col, edgecolors="none",
                       label=f"fold {lab}")
        ax.legend(loc="lower right", fontsize="small", markerscale=max(1.0, 20.0 / size),
                  frameon=True)

    if t.size:
        lo = float(min(t.min(), p.min()))
        hi = float(max(t.max(), p.max()))
    else:
        lo, hi = 0.0, 1.0
    pad = 0.04 * (hi - lo) if hi > lo else 0.5
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1.0, ls="--", zorder=0, label="_y=x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("true" + _unit_suffix(unit))
    ax.set_ylabel("predicted" + _unit_suffix(unit))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)

    u = f" {unit}" if unit else ""
    if t.size:
        from .evaluation import regression_metrics  # the same metrics as metrics.json

        m = regression_metrics(t[:, None], p[:, None])
        lines = [
            f"MAE = {m['mae']:.4g}{u}",
            f"RMSE = {m['rmse']:.4g}{u}",
            f"R$^2$ = {m['r2']:.4g}",
            f"n = {m['n']}",
        ]
    else:
        lines = ["no finite points"]
    if n_dropped:
        lines.append(f"({n_dropped} non-finite dropped)")
    ax.text(0.04, 0.96, "\n".join(lines), transform=ax.transAxes, va="top", ha="left",
            fontsize="medium", gid="metrics",
            bbox=dict(boxstyle="round", facecolor="white", alpha=0.85, edgecolor="0.6"))
    return fig


# --------------------------------------------------------------------------------------------
# learning curves
# --------------------------------------------------------------------------------------------


def _heads_from_columns(columns: Sequence[str]) -> list[str]:
    heads: list[str] = []
    for c in columns:
        if not isinstance(c, str):
            continue
        for prefix in ("train/", "val/"):
            if c.startswith(prefix):
                h = c[len(prefix):]
                if h and h not in heads:
                    heads.append(h)
    if "total" in heads:  # total always last
        heads.remove("total")
        heads.append("total")
    return heads


def _minor_log_label(v: float, _pos=None) -> str:
    """Label only the 2x and 5x minor ticks of a log axis, in plain notation."""
    if v <= 0:
        return ""
    mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
    return f"{v:g}" if round(mantissa) in (2, 5) and abs(mantissa - round(mantissa)) < 1e-6 else ""


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    n = max(n, 1)
    ncols = 2 if n == 4 else min(max_cols, n)
    return math.ceil(max(n, 1) / ncols), ncols


def learning_curves_figure(history: pd.DataFrame, *, title: str) -> Figure:
    """One panel per loss head (``train/<head>``, ``val/<head>``), ``total`` last.

    Train is solid, validation dashed, one colour per fold. A panel's y axis is logarithmic
    when every value plotted in it is > 0. NaN entries (e.g. epochs without validation) are
    skipped.
    """
    missing = [c for c in ("fold", "epoch") if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {missing}")
    heads = _heads_from_columns(list(history.columns))
    if not heads:
        raise ValueError("history has no 'train/<head>' or 'val/<head>' columns")

    folds = sorted(pd.unique(history["fold"]))
    colours = dict(zip(folds, _categorical_colours(len(folds))))
    nrows, ncols = _grid(len(heads))
    fig = _new_figure((4.2 * ncols, 3.2 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(heads):]:
        fig.delaxes(ax)

    hist = history.sort_values(["fold", "epoch"])
    for ax, head in zip(axes, heads):
        values = []
        for split, ls in (("train", "-"), ("val", "--")):
            col = f"{split}/{head}"
            if col not in hist.columns:
                continue
            for fold in folds:
                d = hist.loc[hist["fold"] == fold, ["epoch", col]].dropna()
                if d.empty:
                    continue
                y = d[col].to_numpy(dtype=np.float64)
                values.append(y)
                ax.plot(d["epoch"].to_numpy(), y, ls=ls, lw=1.1, color=colours[fold],
                        alpha=0.9)
        if values:
            allv = np.concatenate(values)
            allv = allv[np.isfinite(allv)]
            if allv.size and np.all(allv > 0):
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
                decades = math.log10(float(allv.max()) / float(allv.min()))
                ax.yaxis.set_minor_formatter(FuncFormatter(
                    _minor_log_label if decades <= 2.0 else (lambda v, _pos: "")))
                ax.tick_params(axis="y", which="minor", labelsize="x-small")
        ax.set_title(head)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, which="major", alpha=0.3)

    handles = [Line2D([], [], color=colours[f], lw=1.5, label=f"fold {f}") for f in folds]
    handles += [
        Line2D([], [], color="0.2", ls="-", label="train"),
        Line2D([], [], color="0.2", ls="--", label="val"),
    ]
    fig.legend(handles=handles, fontsize="small", loc="outside right upper")
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# latent maps
# --------------------------------------------------------------------------------------------


def _is_numeric(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "iuf"  # bool, str, object, categoricals -> categorical


def latent_map_figure(
    latent_2d: np.ndarray,
    colour_by: Mapping[str, np.ndarray],
    *,
    title: str,
    axis_labels: tuple[str, str] = ("latent 1", "latent 2"),
) -> Figure:
    """Scatter of a 2-D latent space, one panel per ``colour_by`` entry.

    Numeric arrays are drawn with a continuous colour map and a colourbar (which adds one
    axes to ``fig.axes``); string / object / bool arrays get one colour per category and a
    legend. With an empty ``colour_by`` a single uncoloured panel is drawn. NaN values in a
    numeric array are drawn in light grey.
    """
    z = np.asarray(latent_2d, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_2d must have shape (n, 2), got {z.shape}")
    n = z.shape[0]
    entries = list(colour_by.items()) if colour_by else [("", None)]
    for name, values in entries:
        if values is not None and np.asarray(values).ravel().shape[0] != n:
            raise ValueError(f"colour_by[{name!r}] has {np.asarray(values).size} values, "
                             f"latent_2d has {n} rows")

    nrows, ncols = _grid(len(entries))
    fig = _new_figure((4.6 * ncols, 4.0 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(entries):]:
        fig.delaxes(ax)
    size = _marker_size(n)

    for ax, (name, values) in zip(axes, entries):
        if values is None:
            ax.scatter(z[:, 0], z[:, 1], s=size, color="C0", alpha=0.7, edgecolors="none")
        else:
            v = np.asarray(values).ravel()
            if _is_numeric(v):
                v = v.astype(np.float64)
                finite = np.isfinite(v)
                if (~finite).any():
                    ax.scatter(z[~finite, 0], z[~finite, 1], s=size, color="0.8",
                               edgecolors="none", label="missing")
                if finite.any():
                    norm = Normalize(vmin=float(v[finite].min()), vmax=float(v[finite].max()))
                else:
                    norm = Normalize(0.0, 1.0)
                sc = ax.scatter(z[finite, 0], z[finite, 1], c=v[finite], s=size,
                                cmap="viridis", norm=norm, alpha=0.85, edgecolors="none")
                fig.colorbar(sc, ax=ax, label=name)
            else:
                keys = pd.Series(v, dtype=object).where(pd.notna(v), "missing").astype(str)
                cats = list(pd.unique(keys))
                try:
                    cats = sorted(cats)
                except TypeError:
                    pass
                colours = _categorical_colours(len(cats))
                for cat, col in zip(cats, colours):
                    sel = (keys == cat).to_numpy()
                    ax.scatter(z[sel, 0], z[sel, 1], s=size, color=col, alpha=0.8,
                               edgecolors="none", label=cat)
                ax.legend(title=name, fontsize="x-small", title_fontsize="small",
                          markerscale=max(1.0, 20.0 / size), loc="best",
                          ncol=1 if len(cats) <= 8 else 2)
        ax.set_title(name)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------
# latent-size scan
# --------------------------------------------------------------------------------------------


def size_scan_figure(table: pd.DataFrame, *, x: str, y: str, title: str) -> Figure:
    """Mean +- standard deviation of ``y`` over the rows sharing each ``x`` value.

    The standard deviation is the sample one (ddof=1), 0 where an ``x`` has a single row.
    Individual rows are drawn as faint dots behind the error bars.
    """
    for col in (x, y):
        if col not in table.columns:
            raise ValueError(f"table lacks column {col!r}")
    d = table[[x, y]].dropna()
    g = d.groupby(x, sort=True)[y].agg(["mean", "std", "count"])
    g["std"] = g["std"].fillna(0.0)

    fig = _new_figure((5.6, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(d[x], d[y], s=12, color="0.6", alpha=0.5, edgecolors="none",
               label="individual runs")
    ax.errorbar(g.index.to_numpy(), g["mean"].to_numpy(), yerr=g["std"].to_numpy(),
                fmt="o-", color="C0", capsize=4, lw=1.5, label="mean $\\pm$ std")
    if len(g) and pd.api.types.is_integer_dtype(g.index.dtype):
        ax.set_xticks(g.index.to_numpy())
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# --------------------------------------------------------------------------------------------
# correlation heatmap
# --------------------------------------------------------------------------------------------


def heatmap_figure(
    matrix: pd.DataFrame,
    *,
    title: str,
    vmin: float = -1,
    vmax: float = 1,
) -> Figure:
    """Labelled heatmap (e.g. a correlation matrix) with a colourbar.

    Cells are annotated with their value (2 decimals) when the matrix is at most 25 x 25.
    NaN cells are grey and not annotated.
    """
    from matplotlib import colormaps

    values = matrix.to_numpy(dtype=np.float64)
    nr, nc = values.shape
    cell = 0.42 if max(nr, nc) <= 25 else 0.22
    width = float(np.clip(nc * cell + 2.8, 4.5, 22.0))
    height = float(np.clip(nr * cell + 1.8, 3.5, 22.0))
    fig = _new_figure((width, height))
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["RdBu_r"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax,
                   aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)

    ax.set_xticks(np.arange(nc))
    ax.set_yticks(np.arange(nr))
    label_size = "small" if max(nr, nc) <= 25 else "x-small"
    ax.set_xticklabels([str(c) for c in matrix.columns], rotation=60, ha="right",
                       rotation_mode="anchor", fontsize=label_size)
    ax.set_yticklabels([str(i) for i in matrix.index], fontsize=label_size)
    ax.set_xticks(np.arange(nc + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(nr + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=0.5)
    ax.tick_params(which="minor", length=0)

    if nr <= 25 and nc <= 25:
        width_v = (vmax - vmin) or 1.0
        fs = 8 if max(nr, nc) <= 12 else (7 if max(nr, nc) <= 20 else 6)
        for i in range(nr):
            for j in range(nc):
                val = values[i, j]
                if not np.isfinite(val):
                    continue
                dark = abs((val - vmin) / width_v - 0.5) > 0.3  # far from the white middle
                colour = "white" if dark else "black"
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=fs,
                        color=colour)
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------------
# tuning: the metric against the budget spent and against each setting
# --------------------------------------------------------------------------------------------

def tune_figure(trials: pd.DataFrame, *, metric: str, keys: Sequence[str], log_keys:
                Sequence[str] = (), maximise: bool = False, title: str = "") -> Figure:
    """``nested-ae tune``'s trials (one row per rung and candidate: ``rung``, ``epochs`` and
    the ``cv METRIC`` of its plain folds; ``epochs_trained``, if given, what each row's
    training cost, else ``epochs``): the first panel the metric against the setting-epochs
    spent so far (rows in the order trained) with the best so far, then one panel per setting
    ``keys`` (log x axis for ``log_keys``); one colour per rung."""
    col = f"cv {metric}"
    missing = [c for c in ("rung", "epochs", col, *keys) if c not in trials.columns]
    if missing:
        raise ValueError(f"trials lack column(s) {missing}")
    y = trials[col].to_numpy(float)
    spent = pd.Series(np.cumsum(trials.get("epochs_trained", trials["epochs"]).to_numpy(float)),
                      index=trials.index)
    if "setting" in trials:  # a length read from a run is plotted where that run is paid for
        spent = spent.groupby([trials["rung"], trials["setting"]]).transform("max")
    spent = spent.to_numpy()
    rungs = sorted(pd.unique(trials["rung"]))
    colours = dict(zip(rungs, _categorical_colours(len(rungs))))
    nrows, ncols = _grid(1 + len(keys))
    fig = _new_figure((4.2 * ncols, 3.2 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[1 + len(keys):]:
        fig.delaxes(ax)
    for ax, x, label in zip(axes, [spent, *(trials[k] for k in keys)],
                            ["setting-epochs spent", *keys]):
        for r in rungs:
            at = (trials["rung"] == r).to_numpy()
            ax.scatter(np.asarray(x)[at], y[at], s=18, color=colours[r],
                       label=f"rung {r} ({int(trials['epochs'][at].max())} epochs)")
        ax.set_xlabel(label)
        ax.set_ylabel(col)
        ax.grid(True, alpha=0.3)
        if label in log_keys:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    finite = np.where(np.isnan(y), -np.inf if maximise else np.inf, y)
    best = np.maximum.accumulate(finite) if maximise else np.minimum.accumulate(finite)
    axes[0].step(spent, np.where(np.isfinite(best), best, np.nan), where="post", color="0.3",
                 lw=1.2, label="best so far")
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
