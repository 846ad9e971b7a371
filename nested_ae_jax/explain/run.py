"""``explain_run``: every explanation of a trained run, written to RUN_DIR/explain/.

Which model is explained: latents of different folds are not aligned (unit j of fold 0 need
not mean what unit j of fold 1 means), so each scale is explained through ONE of its trained
models (``trained.representative``: the one that feeds downstream scales, else fold
chain.feed_fold); ``fold=`` overrides. Upstream scales enter exactly as they fed that model in
training. Latent activity is also tabulated for every model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import pandas as pd

from .. import io, nesting, plots, trained
from ..config import ScaleSpec, resolve_data_path
from ..data import ScaleData, encode_targets, read_table
from ..errors import NestedAEError
from ..model import ScaleModel
from ..nesting import Chain
from ..splits import Folds
from ..store import TrainedRun, load_run
from . import analysis, attribution, scan

from . import DEFAULT_BACKGROUND, DEFAULT_ROWS

Progress = Callable[[str], None]


# ----------------------------------------------------------------------------------------------
# A scale of a trained run, evaluated on its own rows


@dataclass
class ScaleView:
    """One scale of a run on its own data rows, through the explained model."""

    name: str
    spec: ScaleSpec
    model: ScaleModel
    index: int  # the explained model (index along the scale's model axis)
    label: str  # "fold 0" / "all-rows model"
    params: dict
    stats: dict
    data: ScaleData  # inputs with latent groups filled by the upstream chain
    raw: dict  # {SCALE: {GROUP: raw}} of this scale and its upstream scales, same rows
    chain: Chain
    chain_params: dict
    outputs: dict  # this scale's outputs (explained model), numpy
    upstream: dict  # {SCALE: outputs} of upstream scales on these rows
    folds: Folds
    all_params: dict = field(default=None)  # every model's params (leading model axis)
    all_latents: np.ndarray = field(default=None)  # (models, N, L): every model's latent


def explained_index(run: TrainedRun, name: str, fold: int | None = None) -> tuple[int, str]:
    """Index and label of the model that represents scale ``name`` (``trained.representative``;
    ``fold`` picks another model)."""
    scale = run.scales[name]
    if fold is not None:
        total = scale.n_models
        if not 0 <= fold < total:
            raise NestedAEError(f"--fold {fold}: scale '{name}' has models 0..{total - 1}")
        return fold, trained.model_label(scale, fold)
    feeds = any(name in s.upstream for s in run.config.scales)
    return trained.representative(scale, run.config.chain, feeds)


def scale_view(run: TrainedRun, name: str, *, fold: int | None = None,
               data_root: str | None = None) -> ScaleView:
    """Read scale ``name``'s data file and run the chain on it through the explained model
    (one copy of ``trained.chain_copies``: upstream scales fed as in training)."""
    cfg = run.config
    specs = {s.name: s for s in cfg.scales}
    spec = specs[name]
    upto = [*nesting.upstream_of(cfg, name), name]
    scales = run.scales
    path = resolve_data_path(spec.data, run.path, data_root)
    source = str(path)
    frame = read_table(path, spec.column_names)
    categories = scales[name].categories
    raw = nesting.chain_inputs({n: specs[n] for n in upto},
                               {n: scales[n].categories for n in upto}, frame, name, source)
    index, label = explained_index(run, name, fold)
    chain, copies = trained.chain_copies(scales, name, np.array([index]))
    copies = trained.refit_upstream(cfg.chain, chain, copies, raw, list(spec.upstream))
    cp = jax.tree.map(lambda a: a[0], copies)  # the one copy
    outs = jax.jit(chain.apply)(cp, raw)
    inputs = {g: np.asarray(v) for g, v in raw[name].items()}
    for g in spec.inputs:
        if g.kind == "latent":
            inputs[g.name] = np.asarray(outs[g.scale].latent)
    targets = encode_targets(spec, frame, categories, source)
    data = ScaleData(frame, inputs, targets, categories, source)
    ls = scales[name]
    n = len(frame)
    if spec.cv.kind != "none" and ls.n_cv > 0 and len(ls.fold_of_row) == n:
        folds = Folds.from_fold_ids(ls.fold_of_row, ls.n_cv)
    else:
        folds = Folds.single(n)
    model = ls.model
    every = jax.jit(jax.vmap(lambda p, s: model.apply(p, s, inputs).latent))(ls.params, ls.stats)
    to_np = lambda t: jax.tree.map(np.asarray, t)  # noqa: E731
    return ScaleView(name, spec, model, index, label, cp[name].params, cp[name].stats, data,
                     raw, chain, cp, to_np(outs[name]), {n_: to_np(outs[n_]) for n_ in upto[:-1]},
                     folds, ls.params, np.asarray(every))


# ----------------------------------------------------------------------------------------------
# Tables


def activity_table(view: ScaleView) -> pd.DataFrame:
    """Latent activity of every model of the scale, with each latent's Pearson r to every
    regression target (true values) on the scale's rows."""
    loaded_params = view.all_params
    frames = []
    targets = target_columns(view)
    for m in range(view.all_latents.shape[0]):
        enc = jax.tree.map(lambda a: np.asarray(a)[m], loaded_params["encoder"])
        z = view.all_latents[m]
        t = analysis.latent_activity(enc, z)
        t.insert(0, "model", m)
        t.insert(0, "scale", view.name)
        t["explained"] = m == view.index
        for col, y in targets.items():
            t[f"r[{col}]"] = [_pearson(z[:, j], y) for j in range(z.shape[1])]
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(analysis.pearson_matrix(pd.DataFrame({"a": a, "b": b})).iloc[0, 1])


def target_columns(view: ScaleView) -> dict[str, np.ndarray]:
    """True values of every regression target column, by column name."""
    out = {}
    for h in view.spec.heads:
        if h.kind == "regression":
            y = np.asarray(view.data.targets[h.name])
            out.update({t: y[:, j] for j, t in enumerate(h.target)})
    return out


def descriptor_columns(view: ScaleView) -> dict[str, np.ndarray]:
    """The scale's inputs as named columns: numeric by column name, latent groups
    ``UP.latent_j``, categorical groups one indicator per class ``COLUMN=label``."""
    out = {}
    for g in view.spec.inputs:
        x = np.asarray(view.data.inputs[g.name])
        if g.kind == "numeric":
            out.update({c: x[:, j] for j, c in enumerate(g.columns)})
        elif g.kind == "latent":
            out.update({f"{g.scale}.latent_{j}": x[:, j] for j in range(x.shape[1])})
        else:
            labels = view.data.categories.groups[g.name]
            out.update({f"{g.column}={lab}": (x == k).astype(np.float64)
                        for k, lab in enumerate(labels)})
    return out


def correlation_tables(view: ScaleView) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Square Pearson and adjusted correlation matrices over [latents, descriptors, targets]
    and the names of the latent rows."""
    z = view.outputs.latent
    latents = {f"latent_{j}": z[:, j] for j in range(z.shape[1])}
    cols = {**latents, **descriptor_columns(view), **target_columns(view)}
    r = analysis.pearson_matrix(pd.DataFrame(cols))
    return r, analysis.adjusted_correlation(r, len(z)), list(latents)


def map_colours(view: ScaleView) -> dict[str, np.ndarray]:
    """Colourings of a latent map: every head's prediction (regression values, categorical
    predicted labels), the scale's categorical inputs, and upstream scales' regression
    predictions on these rows."""
    cols = {}
    for h in view.spec.heads:
        pred = view.outputs.heads[h.name]
        if h.kind == "regression":
            for j, t in enumerate(h.target):
                cols[f"{h.name}[{t}] predicted" if len(h.target) > 1 else
                     f"{h.name} predicted"] = pred[:, j]
        elif h.kind == "categorical" and not h.input:
            labels = np.array(view.data.categories.heads[h.name], dtype=object)
            cols[f"{h.name} predicted"] = labels[pred.argmax(-1)]
    for g in view.spec.inputs:
        if g.kind == "categorical":
            labels = np.array(view.data.categories.groups[g.name], dtype=object)
            cols[g.column] = labels[np.asarray(view.data.inputs[g.name])]
    for up, outs in view.upstream.items():
        for h in [h for h in _spec_of(view, up).heads if h.kind == "regression"]:
            cols[f"{up}.{h.name} predicted"] = outs.heads[h.name][:, 0]
    return cols


def _spec_of(view: ScaleView, name: str) -> ScaleSpec:
    return view.chain.models[name].spec


# ----------------------------------------------------------------------------------------------
# Figures (fresh matplotlib Figures with an Agg canvas, like ``plots``)


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    return fig


def activity_figure(table: pd.DataFrame, title: str):
    """Two bar panels per latent: encoder-weight L1 and std over the data; inactive grey."""
    fig = _figure((max(5.0, 0.45 * len(table) + 2.0), 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    colours = np.where(table["active"], "C0", "0.7")
    ax1.bar(x, table["weight_l1"], color=colours)
    ax1.set_ylabel("L1 of encoder weights")
    ax2.bar(x, table["std"], color=colours)
    ax2.set_ylabel("std over rows")
    ax2.set_xticks(x, [s.replace("latent_", "") for s in table["latent"]])
    ax2.set_xlabel("latent unit (grey: inactive)")
    for ax in (ax1, ax2):
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    return fig


def bar_figure(names, values, title: str, xlabel: str, signed=None):
    """Horizontal bars sorted by value (largest on top); optional dots for a signed value."""
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


# ----------------------------------------------------------------------------------------------
# The whole explanation


class _Writer:
    """Writes files into the output folder and keeps the index entries (figure + caption)."""

    def __init__(self, out: Path):
        self.out = out
        self.sections: list[tuple[str, list[str]]] = []
        self.files: list[str] = []

    def section(self, title: str) -> None:
        self.sections.append((title, []))

    def text(self, line: str) -> None:
        self.sections[-1][1].append(line)

    def csv(self, name: str, frame: pd.DataFrame, what: str) -> None:
        io.atomic_write_csv(self.out / name, frame)
        self.files.append(name)
        self.text(f"- [`{name}`]({name}): {what}")

    def figure(self, name: str, fig, caption: str) -> None:
        io.atomic_savefig(self.out / name, fig, dpi=110)
        self.files.append(name)
        self.text(f"\n![{name}]({name})\n\n*{caption}*\n")

    def index(self, header: list[str]) -> str:
        lines = list(header)
        for title, body in self.sections:
            lines += ["", f"## {title}", ""] + body
        return "\n".join(lines) + "\n"


def _rng_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def explain_run(run_dir, out_dir=None, *, background: int = DEFAULT_BACKGROUND,
                max_rows: int = DEFAULT_ROWS, seed: int = 0, progress: Progress | None = None,
                scan_sizes: int | None = None, scan_epochs: int | dict | None = None,
                scan_scales: list[str] | None = None, fold: int | None = None,
                data_root: str | None = None) -> dict:
    """Write every explanation of a trained run to ``out_dir`` (default RUN_DIR/explain):
    latent activity, correlation maps, Shapley values, chain gradients, latent-size scans,
    latent maps, ``summary.json`` and ``index.md``. Returns the summary dict.

    background / max_rows: background-set size and number of explained rows of the Shapley
    values (random rows of each scale, ``seed``). scan_sizes: K of the latent-size scan 1..K
    (None: each scale's own latent size; 0: no scan); scan_epochs: its epochs (None: the
    scale's; a dict {SCALE: epochs} sets them per scale); scan_scales: scales to scan (None:
    all). fold: explain this model of every scale
    instead of the default (see the module docstring).
    """
    say = progress or (lambda _line: None)
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "explain"
    out.mkdir(parents=True, exist_ok=True)
    if background < 1 or max_rows < 1:
        raise NestedAEError("--background and --rows must be at least 1")
    w = _Writer(out)
    summary: dict = {"run": str(run.path), "seconds": {}, "scales": {}}
    rng = np.random.default_rng(seed)
    start_all = time.perf_counter()
    views = {}
    for spec in run.config.scales:
        t0 = time.perf_counter()
        view = scale_view(run, spec.name, fold=fold, data_root=data_root)
        views[spec.name] = view
        summary["scales"][spec.name] = {"explained_model": view.label,
                                        "n_rows": len(view.data.frame)}
        summary["seconds"][f"load/{spec.name}"] = time.perf_counter() - t0

    # 1. latent activity ---------------------------------------------------------------------
    w.section("1. Latent activity and sparsity")
    w.text(f"Per latent unit: L1 norm of the encoder weights feeding it (last encoder layer's "
           f"column), and its standard deviation over the scale's rows. A latent is flagged "
           f"inactive when its std is below {analysis.INACTIVE_REL_STD:g} x the largest "
           f"latent std of the same model. `r[TARGET]`: Pearson r of the latent with the "
           f"true target. Every model (fold) is tabulated; `explained` marks the one used "
           f"below.\n")
    tables = []
    for name, view in views.items():
        t0 = time.perf_counter()
        table = activity_table(view)
        tables.append(table)
        mine = table[table["explained"]].reset_index(drop=True)
        w.figure(f"activity_{name}.png",
                 activity_figure(mine, f"{name}: latent activity ({view.label})"),
                 f"{name}: encoder-weight L1 and std over rows of each latent unit "
                 f"({view.label}); grey bars are inactive latents.")
        s = summary["scales"][name]
        s["inactive_latents"] = mine.loc[~mine["active"], "latent"].tolist()
        s["latent_r"] = {c[2:-1]: dict(zip(mine["latent"], mine[c].round(4)))
                         for c in mine.columns if c.startswith("r[")}
        s["latent_std"] = dict(zip(mine["latent"], mine["std"].round(4)))
        summary["seconds"][f"activity/{name}"] = time.perf_counter() - t0
    w.csv("latent_activity.csv", pd.concat(tables, ignore_index=True),
          "latent activity of every model of every scale")

    # 2. correlations ------------------------------------------------------------------------
    w.section("2. Correlation maps")
    w.text("Pearson r among the explained model's latents, the scale's input descriptors "
           "(raw values; a categorical input as one 0/1 indicator per class; upstream latents "
           "as `UP.latent_j`) and its true targets, over all rows of the scale's data file. "
           "Adjusted correlation = max(0, (|r| - SE)/(1 - SE)), SE = 1/sqrt(N - 3). "
           "CSVs hold the full square matrices; the heatmaps show latents (rows) against "
           "descriptors and targets (columns).\n")
    for name, view in views.items():
        t0 = time.perf_counter()
        r, adj, lat = correlation_tables(view)
        rest = [c for c in r.columns if c not in lat]
        for kind, mat, lo in (("pearson", r, -1.0), ("adjusted", adj, -1.0)):
            w.csv(f"corr_{kind}_{name}.csv", mat.rename_axis("variable").reset_index(),
                  f"{name}: {kind} correlation matrix")
            w.figure(f"corr_{kind}_{name}.png",
                     plots.heatmap_figure(mat.loc[lat, rest], vmin=lo, vmax=1.0,
                                          title=f"{name}: {kind} correlation ({view.label})"),
                     f"{name}: {kind} correlation of each latent with each input descriptor "
                     f"and target (N = {len(view.data.frame)}).")
        summary["seconds"][f"correlation/{name}"] = time.perf_counter() - t0

    # 3. attributions ------------------------------------------------------------------------
    w.section("3. Attributions")
    w.text("**Shapley values** (exact, all 2^d coalitions enumerated in JAX): interventional "
           "(baseline) formulation, v(S) = mean over background rows b of f(x_S, b_rest); "
           "phi sums to f(x) - mean_b f(b) for every row (efficiency; the largest violation "
           "is in summary.json). Players are each scale's own encoder inputs: one per column "
           "of a numeric group, one per upstream latent unit (for a downstream scale the "
           "upstream latents are its descriptors), one per categorical input (the whole "
           f"category). Explained: {max_rows} random rows against {background} random "
           "background rows per scale (seed "
           f"{seed}); outputs: every regression head (raw units) and every latent.\n")
    w.text("**Gradient attributions** go through the whole chain: d(head output)/d(raw "
           "numeric input) of every scale upstream of and including the explained one, per "
           "row over all rows of the scale's file, with the input's std over those rows; "
           "`mean_grad_x_std` is the output change for +1 std of the input.\n")
    summary["shapley"] = {}
    for name, view in views.items():
        t0 = time.perf_counter()
        n = len(view.data.frame)
        rows = _rng_rows(n, max_rows, rng)
        bg = _rng_rows(n, background, rng)
        values, importance = attribution.scale_shapley(view.model, view.params, view.stats,
                                                       view.data.inputs, rows, bg)
        players = list(importance.columns)
        gap = np.abs(values[players].sum(axis=1) - (values["f_x"] - values["base"]))
        scale_f = max(1.0, float(np.abs(values["f_x"] - values["base"]).max()))
        secs = time.perf_counter() - t0
        summary["shapley"][name] = {"players": len(players), "coalitions": 2 ** len(players),
                                    "rows": len(rows), "background": len(bg),
                                    "max_efficiency_error": float(gap.max() / scale_f),
                                    "seconds": secs}
        say(f"  shapley {name}: {len(players)} players, {len(rows)} rows x {len(bg)} "
            f"background, {secs:.1f} s")
        w.csv(f"shapley_{name}.csv", values,
              f"{name}: Shapley value of each player per explained row and output")
        w.csv(f"shapley_importance_{name}.csv",
              importance.rename_axis("output").reset_index(),
              f"{name}: mean |Shapley value| per output and player")
        share = importance.div(importance.sum(axis=1).replace(0, np.nan), axis=0)
        w.figure(f"shapley_{name}.png",
                 plots.heatmap_figure(share, vmin=-1.0, vmax=1.0,
                                      title=f"{name}: share of mean |Shapley| ({view.label})"),
                 f"{name}: each output's mean |Shapley value| per input player, as a share "
                 f"of that output's total (rows sum to 1).")
        for out_name in [o for o in importance.index if not o.startswith("latent_")]:
            signed = values.loc[values["output"] == out_name, players].mean(axis=0)
            w.figure(f"shapley_{name}_{_safe(out_name)}.png",
                     bar_figure(players, importance.loc[out_name].to_numpy(),
                                f"{name}.{out_name}: Shapley importance",
                                "mean |Shapley value|", signed.to_numpy()),
                     f"{name}.{out_name}: mean |Shapley value| of each input (bars) and "
                     f"mean signed value (dots) over {len(rows)} rows.")
        summary["scales"][name]["shapley_top"] = {
            o: importance.loc[o].sort_values(ascending=False).head(5).round(5).to_dict()
            for o in importance.index if not o.startswith("latent_")}
        summary["seconds"][f"shapley/{name}"] = secs

        t0 = time.perf_counter()
        grad_rows = {}
        for h in [h for h in view.spec.heads if h.kind == "regression"]:
            for j, tgt in enumerate(h.target):
                head_label = h.name if len(h.target) == 1 else f"{h.name}[{tgt}]"
                grads = attribution.chain_gradients(view.chain.apply, view.chain_params,
                                                    view.raw, name, h.name, j)
                if not grads:
                    continue
                cols, mats, raws = [], [], []
                for (s, g), mat in grads.items():
                    group = view.chain.models[s].spec.group(g)
                    cols += [f"{s}.{c}" for c in group.columns]
                    mats.append(mat)
                    raws.append(np.asarray(view.raw[s][g]))
                mat, rawm = np.concatenate(mats, axis=1), np.concatenate(raws, axis=1)
                per_row = pd.DataFrame(mat, columns=cols)
                per_row.insert(0, "row", np.arange(len(mat)))
                tag = f"{name}_{_safe(head_label)}"
                w.csv(f"gradients_{tag}.csv", per_row,
                      f"d({name}.{head_label})/d(raw input) per row, through the chain")
                summ = attribution.gradient_summary(mat, rawm, cols)
                w.csv(f"gradients_summary_{tag}.csv", summ,
                      f"{name}.{head_label}: gradient attributions averaged over rows")
                w.figure(f"gradients_{tag}.png",
                         bar_figure(cols, summ["mean_abs_grad_x_std"].to_numpy(),
                                    f"d {name}.{head_label} / d raw input (x std)",
                                    "mean |gradient| x input std",
                                    summ["mean_grad_x_std"].to_numpy()),
                         f"{name}.{head_label}: mean |d output / d raw input| x input std over "
                         f"all {len(mat)} rows, through the whole chain (dots: signed mean).")
                grad_rows[head_label] = summ.set_index("input")["mean_grad_x_std"].round(
                    5).to_dict()
        summary["scales"][name]["gradients_x_std"] = grad_rows
        summary["seconds"][f"gradients/{name}"] = time.perf_counter() - t0

    # 4. latent-size scan --------------------------------------------------------------------
    w.section("4. Latent-size scan")
    w.text(f"Each scale re-trained with latent sizes 1..K on the run's own folds, all sizes "
           f"and folds in one compiled program (the model is built at size K; a fixed 0/1 "
           f"mask per model zeroes the encoder's last-layer weights of unused units). Losses "
           f"are validation head losses at the selected epoch; points are folds, bars mean +- "
           f"std. Elbow: the smallest size whose mean error is within "
           f"{analysis.ELBOW_FRAC:g} x (worst - best) of the best.\n")
    summary["scan"] = {}
    for name, view in views.items():
        if scan_sizes == 0 or (scan_scales is not None and name not in scan_scales):
            continue
        k = scan_sizes or view.spec.encoder.latent_size
        epochs = (scan_epochs.get(name) if isinstance(scan_epochs, dict) else scan_epochs) \
            or view.spec.training.epochs
        t0 = time.perf_counter()
        say(f"  scan {name}: latent sizes 1..{k}, {view.folds.n_cv or 1} folds, "
            f"{epochs} epochs")
        table = scan.latent_size_scan(view.spec, view.data, list(range(1, k + 1)),
                                      folds=view.folds, epochs=epochs, progress=progress)
        summ = scan.scan_summary(table)
        secs = time.perf_counter() - t0
        w.csv(f"scan_{name}.csv", table, f"{name}: losses per latent size and fold")
        w.csv(f"scan_summary_{name}.csv", summ, f"{name}: mean/std over folds and elbow")
        elbows = {loss: int(summ.loc[summ["loss"] == loss, "elbow"].iloc[0])
                  for loss in summ["loss"].unique()}
        w.text(f"- {name}: sizes 1..{k}, {table['fold'].nunique()} folds, {epochs} epochs, "
               f"{secs:.0f} s; elbows: " + ", ".join(f"{a} {b}" for a, b in elbows.items()))
        for loss, e in elbows.items():
            fig = plots.size_scan_figure(table.rename(columns={"latent_size": "latent size"}),
                                         x="latent size", y=loss,
                                         title=f"{name}: {loss} vs latent size")
            fig.axes[0].axvline(e, color="C3", ls=":", lw=1.2)
            w.figure(f"scan_{name}_{_safe(loss)}.png", fig,
                     f"{name}: {loss} against latent size (mean +- std over folds); dotted "
                     f"line: elbow at {e}.")
        means = summ.pivot(index="latent_size", columns="loss", values="mean")
        summary["scan"][name] = {"sizes": [1, k], "epochs": epochs, "elbow": elbows,
                                 "mean": {c: means[c].round(5).tolist() for c in means},
                                 "seconds": secs}
        summary["seconds"][f"scan/{name}"] = secs
    if not summary["scan"]:
        w.text("Not run (--scan-sizes 0, or no scale selected by --scan-scales).")

    # 5. latent maps -------------------------------------------------------------------------
    w.section("5. Latent maps")
    w.text("2-D maps of each scale's latent space (explained model, all rows): the latent "
           "itself when it is 2-D, else UMAP when umap-learn is installed, else PCA. Colours: "
           "each head's prediction, the categorical inputs, upstream scales' predictions.\n")
    for name, view in views.items():
        t0 = time.perf_counter()
        coords, labels, method = analysis.latent_map(view.outputs.latent, seed=seed)
        colours = map_colours(view)
        table = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], **colours})
        w.csv(f"latent_map_{name}.csv", table, f"{name}: map coordinates ({method}) and colours")
        w.figure(f"latent_map_{name}.png",
                 plots.latent_map_figure(coords, colours, axis_labels=labels,
                                         title=f"{name}: latent map ({method}, {view.label})"),
                 f"{name}: {method.upper()} map of the {view.spec.encoder.latent_size}-D latent "
                 f"over {len(coords)} rows, coloured by " + ", ".join(colours) + ".")
        summary["scales"][name]["map_method"] = method
        summary["seconds"][f"map/{name}"] = time.perf_counter() - t0

    summary["seconds"]["total"] = time.perf_counter() - start_all
    summary["seconds"] = {k: round(v, 2) for k, v in summary["seconds"].items()}
    io.atomic_write_json(out / "summary.json", summary)
    header = [f"# Explanations of `{run.path}`", "",
              "Written by `nested-ae explain`. Scales are explained through one trained model "
              "each: " + ", ".join(f"{n}: {v.label}" for n, v in views.items()) + ". Key "
              "numbers are in [`summary.json`](summary.json)."]
    for name in views:
        s = summary["scales"][name]
        bits = [f"inactive latents: {', '.join(s['inactive_latents']) or 'none'}"]
        for tgt, rs in s.get("latent_r", {}).items():
            strong = [f"{k} ({v:+.2f})" for k, v in sorted(rs.items(), key=lambda t: -abs(
                t[1] if t[1] == t[1] else 0)) if v == v and abs(v) >= 0.5]
            bits.append(f"latents with |r| >= 0.5 to {tgt}: {', '.join(strong) or 'none'}")
        if name in summary["scan"]:
            bits.append("scan elbows: " + ", ".join(
                f"{k} {v}" for k, v in summary["scan"][name]["elbow"].items()))
        header.append(f"- **{name}**: " + "; ".join(bits))
    io.atomic_write_text(out / "index.md", w.index(header))
    summary["out"] = str(out)
    summary["files"] = w.files + ["summary.json", "index.md"]
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "-"))


def summary_lines(summary: dict) -> list[str]:
    """A few lines for the terminal."""
    lines = []
    for name, s in summary["scales"].items():
        lines.append(f"{name} ({s['explained_model']}): inactive latents "
                     f"{', '.join(s['inactive_latents']) or 'none'}")
        for tgt, rs in s.get("latent_r", {}).items():
            top = sorted(((k, v) for k, v in rs.items() if v == v), key=lambda t: -abs(t[1]))
            lines.append(f"  |r| with {tgt}: " + ", ".join(f"{k} {v:+.2f}" for k, v in top[:4]))
        if name in summary.get("scan", {}):
            lines.append("  scan elbow: " + ", ".join(
                f"{k} {v}" for k, v in summary["scan"][name]["elbow"].items()))
    lines.append(f"wall time {summary['seconds']['total']:.1f} s; wrote {summary['out']}/index.md")
    return lines


__all__ = ["explain_run", "scale_view", "ScaleView", "summary_lines"]
