"""The five sections of RUN_DIR/explain/, each computed from the scale views into a
:class:`~.section.Section` (tables, figures, prose, summary entries); none writes a file.

1. :func:`section_activity`, 2. :func:`section_correlations`, 3. :func:`section_attributions`
(Shapley values and chain gradients), 4. :func:`section_scan`, 5. :func:`section_maps`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import plots
from . import analysis, attribution, scan
from .figures import activity_figure, bar_figure
from .section import Draft, Progress, Section, safe_name
from .tables import activity_table, correlation_tables, map_colours
from .views import ScaleView

Views = dict[str, ScaleView]


def _quiet(_line: str) -> None:
    pass


# ----------------------------------------------------------------------------------------------
# 1. latent activity


def section_activity(views: Views) -> Section:
    """Latent activity of every model of every scale (one CSV) and a bar figure per scale.

    Args: views: {SCALE: ScaleView}.
    Returns: the Section; summary: scales.SCALE.{inactive_latents, latent_r, latent_std}.
    """
    d = Draft("1. Latent activity and sparsity",
              f"Per latent unit, measured on the latent itself (so for any encoder): its "
              f"standard deviation and mean |value| over the scale's rows. A latent is flagged "
              f"inactive when its std is below {analysis.INACTIVE_REL_STD:g} x the largest "
              f"latent std of the same model. `r[TARGET]`: Pearson r of the latent with the "
              f"true target. Every model (fold) is tabulated; `explained` marks the one used "
              f"below.\n")
    scales, seconds, tables = {}, {}, []
    for name, view in views.items():
        t0 = time.perf_counter()
        table = activity_table(view)
        tables.append(table)
        mine = table[table["explained"]].reset_index(drop=True)
        d.figure(f"activity_{name}.png",
                 activity_figure(mine, f"{name}: latent activity ({view.label})"),
                 f"{name}: std and mean |value| over rows of each latent unit "
                 f"({view.label}); grey bars are inactive latents.")
        scales[name] = {
            "inactive_latents": mine.loc[~mine["active"], "latent"].tolist(),
            "latent_r": {c[2:-1]: dict(zip(mine["latent"], mine[c].round(4)))
                         for c in mine.columns if c.startswith("r[")},
            "latent_std": dict(zip(mine["latent"], mine["std"].round(4)))}
        seconds[f"activity/{name}"] = time.perf_counter() - t0
    d.table("latent_activity.csv", pd.concat(tables, ignore_index=True),
            "latent activity of every model of every scale")
    return d.done({"scales": scales}, seconds)


# ----------------------------------------------------------------------------------------------
# 2. correlations


def section_correlations(views: Views) -> Section:
    """Pearson and adjusted correlation matrices per scale (CSV) and their latent rows
    against descriptors and targets (heatmaps).

    Args: views: {SCALE: ScaleView}.
    Returns: the Section (no summary entries).
    """
    d = Draft("2. Correlation maps",
              "Pearson r among the explained model's latents, the scale's input descriptors "
              "(raw values; a categorical input as one 0/1 indicator per class; upstream "
              "latents as `UP.latent_j`) and its true targets, over all rows of the scale's "
              "data file. Adjusted correlation = max(0, (|r| - SE)/(1 - SE)), SE = "
              "1/sqrt(N - 3). CSVs hold the full square matrices; the heatmaps show latents "
              "(rows) against descriptors and targets (columns).\n")
    seconds = {}
    for name, view in views.items():
        t0 = time.perf_counter()
        r, adj, lat = correlation_tables(view)
        rest = [c for c in r.columns if c not in lat]
        for kind, mat, lo in (("pearson", r, -1.0), ("adjusted", adj, -1.0)):
            d.table(f"corr_{kind}_{name}.csv", mat.rename_axis("variable").reset_index(),
                    f"{name}: {kind} correlation matrix")
            d.figure(f"corr_{kind}_{name}.png",
                     plots.heatmap_figure(mat.loc[lat, rest], vmin=lo, vmax=1.0,
                                          title=f"{name}: {kind} correlation ({view.label})"),
                     f"{name}: {kind} correlation of each latent with each input descriptor "
                     f"and target (N = {len(view.data.frame)}).")
        seconds[f"correlation/{name}"] = time.perf_counter() - t0
    return d.done({}, seconds)


# ----------------------------------------------------------------------------------------------
# 3. attributions


def section_attributions(views: Views, *, background: int, max_rows: int, seed: int = 0,
                         progress: Progress | None = None) -> Section:
    """Exact Shapley values of each scale's encoder inputs (``max_rows`` random rows against
    ``background`` random background rows, ``seed``) and gradients of every regression output
    with respect to the raw numeric inputs of the whole chain.

    Args: views: {SCALE: ScaleView}; progress: called with one line per scale's Shapley values.
    Returns: the Section; summary: shapley.SCALE.{players, coalitions, rows, background,
    max_efficiency_error, seconds}, scales.SCALE.{shapley_top, gradients_x_std}.
    """
    say = progress or _quiet
    d = Draft("3. Attributions",
              "**Shapley values** (exact, all 2^d coalitions enumerated in JAX): "
              "interventional (baseline) formulation, v(S) = mean over background rows b of "
              "f(x_S, b_rest); phi sums to f(x) - mean_b f(b) for every row (efficiency; the "
              "largest violation is in summary.json). Players are each scale's own encoder "
              "inputs: one per column of a numeric group, one per upstream latent unit (for a "
              "downstream scale the upstream latents are its descriptors), one per "
              f"categorical input (the whole category). Explained: {max_rows} random rows "
              f"against {background} random background rows per scale (seed {seed}); "
              "outputs: every regression head (raw units) and every latent.\n",
              "**Gradient attributions** go through the whole chain: d(head output)/d(raw "
              "numeric input) of every scale upstream of and including the explained one, per "
              "row over all rows of the scale's file, with the input's std over those rows; "
              "`mean_grad_x_std` is the output change for +1 std of the input.\n")
    rng = np.random.default_rng(seed)
    shapley, scales, seconds = {}, {}, {}
    for name, view in views.items():
        t0 = time.perf_counter()
        n = len(view.data.frame)
        rows = _rng_rows(n, max_rows, rng)
        bg = _rng_rows(n, background, rng)
        values, importance = attribution.scale_shapley(view.model, view.params, view.stats,
                                                       view.data.inputs, rows, bg)
        secs = time.perf_counter() - t0
        shapley[name], top = _shapley_parts(d, name, view, values, importance, rows, bg)
        shapley[name]["seconds"] = secs
        say(f"  shapley {name}: {shapley[name]['players']} players, {len(rows)} rows x "
            f"{len(bg)} background, {secs:.1f} s")
        seconds[f"shapley/{name}"] = secs
        t0 = time.perf_counter()
        scales[name] = {"shapley_top": top, "gradients_x_std": _gradients(d, name, view)}
        seconds[f"gradients/{name}"] = time.perf_counter() - t0
    return d.done({"shapley": shapley, "scales": scales}, seconds)


def _rng_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def _shapley_parts(d: Draft, name: str, view: ScaleView, values: pd.DataFrame,
                   importance: pd.DataFrame, rows: np.ndarray, bg: np.ndarray
                   ) -> tuple[dict, dict]:
    """Adds one scale's Shapley tables and figures (of ``attribution.scale_shapley``) to
    ``d``; returns its summary.shapley entry (without seconds) and its top-5 players per
    regression output."""
    players = list(importance.columns)
    gap = np.abs(values[players].sum(axis=1) - (values["f_x"] - values["base"]))
    scale_f = max(1.0, float(np.abs(values["f_x"] - values["base"]).max()))
    entry = {"players": len(players), "coalitions": 2 ** len(players), "rows": len(rows),
             "background": len(bg), "max_efficiency_error": float(gap.max() / scale_f)}
    d.table(f"shapley_{name}.csv", values,
            f"{name}: Shapley value of each player per explained row and output")
    d.table(f"shapley_importance_{name}.csv", importance.rename_axis("output").reset_index(),
            f"{name}: mean |Shapley value| per output and player")
    share = importance.div(importance.sum(axis=1).replace(0, np.nan), axis=0)
    d.figure(f"shapley_{name}.png",
             plots.heatmap_figure(share, vmin=-1.0, vmax=1.0,
                                  title=f"{name}: share of mean |Shapley| ({view.label})"),
             f"{name}: each output's mean |Shapley value| per input player, as a share "
             f"of that output's total (rows sum to 1).")
    heads = [o for o in importance.index if not o.startswith("latent_")]
    for out_name in heads:
        signed = values.loc[values["output"] == out_name, players].mean(axis=0)
        d.figure(f"shapley_{name}_{safe_name(out_name)}.png",
                 bar_figure(players, importance.loc[out_name].to_numpy(),
                            f"{name}.{out_name}: Shapley importance",
                            "mean |Shapley value|", signed.to_numpy()),
                 f"{name}.{out_name}: mean |Shapley value| of each input (bars) and "
                 f"mean signed value (dots) over {len(rows)} rows.")
    top = {o: importance.loc[o].sort_values(ascending=False).head(5).round(5).to_dict()
           for o in heads}
    return entry, top


def _gradients(d: Draft, name: str, view: ScaleView) -> dict:
    """Adds the chain-gradient tables and figures of every regression output of one scale to
    ``d``; returns {output: {input: mean gradient x std}}."""
    out = {}
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
            tag = f"{name}_{safe_name(head_label)}"
            d.table(f"gradients_{tag}.csv", per_row,
                    f"d({name}.{head_label})/d(raw input) per row, through the chain")
            summ = attribution.gradient_summary(mat, rawm, cols)
            d.table(f"gradients_summary_{tag}.csv", summ,
                    f"{name}.{head_label}: gradient attributions averaged over rows")
            d.figure(f"gradients_{tag}.png",
                     bar_figure(cols, summ["mean_abs_grad_x_std"].to_numpy(),
                                f"d {name}.{head_label} / d raw input (x std)",
                                "mean |gradient| x input std",
                                summ["mean_grad_x_std"].to_numpy()),
                     f"{name}.{head_label}: mean |d output / d raw input| x input std over "
                     f"all {len(mat)} rows, through the whole chain (dots: signed mean).")
            out[head_label] = summ.set_index("input")["mean_grad_x_std"].round(5).to_dict()
    return out


# ----------------------------------------------------------------------------------------------
# 4. latent-size scan


QUICK_SCAN_EPOCHS = 300  # the default scan: enough to rank latent sizes, a fifth of the paper's


def scan_epochs(training_epochs: int, asked: int | str | None) -> int:
    """Epochs of a scale's latent-size scan: ``asked`` (an int), the scale's own training
    epochs ("full"), or by default the quick scan, min(training epochs, 300)."""
    if asked == "full":
        return training_epochs
    return int(asked) if asked else min(training_epochs, QUICK_SCAN_EPOCHS)


def section_scan(views: Views, *, sizes: int | None = None, epochs: int | dict | None = None,
                 scales: list[str] | None = None, progress: Progress | None = None) -> Section:
    """Each selected scale re-trained at latent sizes 1..K on its own folds
    (:func:`scan.latent_size_scan`), with the elbow of every loss.

    Args: views: {SCALE: ScaleView}; sizes: K (None: the scale's latent size; 0: no scan);
    epochs: None (the quick scan, :func:`scan_epochs`), an int, "full" (the scale's training
    epochs), or {SCALE: any of these}; scales: the scales to scan (None:
    all); progress: called with one line per scale and passed on to the training loop.
    Returns: the Section; summary: scan.SCALE.{sizes, epochs, elbow, mean, seconds}
    ("scan" is {} when nothing was scanned).
    """
    say = progress or _quiet
    d = Draft("4. Latent-size scan",
              f"Each scale re-trained with latent sizes 1..K on the run's own folds, all sizes "
              f"and folds in one compiled program (the model is built at size K; a fixed 0/1 "
              f"mask per model zeroes the encoder's last-layer weights of unused units). "
              f"Losses are validation head losses at the selected epoch; points are folds, bars "
              f"mean +- std. Elbow: the smallest size whose mean error is within "
              f"{analysis.ELBOW_FRAC:g} x (worst - best) of the best.\n")
    summary, seconds = {}, {}
    for name, view in views.items():
        if sizes == 0 or (scales is not None and name not in scales):
            continue
        k = sizes or view.spec.encoder.latent_size
        n_epochs = scan_epochs(view.spec.training.epochs,
                               epochs.get(name) if isinstance(epochs, dict) else epochs)
        t0 = time.perf_counter()
        say(f"  scan {name}: latent sizes 1..{k}, {view.folds.n_cv or 1} folds, "
            f"{n_epochs} epochs")
        table = scan.latent_size_scan(view.spec, view.data, list(range(1, k + 1)),
                                      folds=view.folds, epochs=n_epochs, progress=progress)
        summ = scan.scan_summary(table)
        secs = time.perf_counter() - t0
        d.table(f"scan_{name}.csv", table, f"{name}: losses per latent size and fold")
        d.table(f"scan_summary_{name}.csv", summ,
                f"{name}: mean/median/std over folds and the elbow (of the median)")
        elbows = {loss: int(summ.loc[summ["loss"] == loss, "elbow"].iloc[0])
                  for loss in summ["loss"].unique()}
        d.text(f"- {name}: sizes 1..{k}, {table['fold'].nunique()} folds, {n_epochs} epochs, "
               f"{secs:.0f} s; elbows: " + ", ".join(f"{a} {b}" for a, b in elbows.items()))
        for loss, e in elbows.items():
            fig = plots.size_scan_figure(table.rename(columns={"latent_size": "latent size"}),
                                         x="latent size", y=loss,
                                         title=f"{name}: {loss} vs latent size")
            fig.axes[0].axvline(e, color="C3", ls=":", lw=1.2)
            d.figure(f"scan_{name}_{safe_name(loss)}.png", fig,
                     f"{name}: {loss} against latent size (mean +- std over folds); dotted "
                     f"line: elbow at {e}.")
        means = summ.pivot(index="latent_size", columns="loss", values="mean")
        summary[name] = {"sizes": [1, k], "epochs": n_epochs, "elbow": elbows,
                         "mean": {c: means[c].round(5).tolist() for c in means},
                         "seconds": secs}
        seconds[f"scan/{name}"] = secs
    if not summary:
        d.text("Not run (--scan-sizes 0, or no scale selected by --scan-scales).")
    return d.done({"scan": summary}, seconds)


# ----------------------------------------------------------------------------------------------
# 5. latent maps


def section_maps(views: Views, *, seed: int = 0) -> Section:
    """A 2-D map of each scale's latent (:func:`analysis.latent_map`, UMAP ``seed``), coloured
    by :func:`tables.map_colours`.

    Args: views: {SCALE: ScaleView}.
    Returns: the Section; summary: scales.SCALE.map_method.
    """
    d = Draft("5. Latent maps",
              "2-D maps of each scale's latent space (explained model, all rows): the latent "
              "itself when it is 2-D, else UMAP when umap-learn is installed, else PCA. "
              "Colours: each head's prediction, the categorical inputs, upstream scales' "
              "predictions.\n")
    scales, seconds = {}, {}
    for name, view in views.items():
        t0 = time.perf_counter()
        coords, labels, method = analysis.latent_map(view.outputs.latent, seed=seed)
        colours = map_colours(view)
        table = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], **colours})
        d.table(f"latent_map_{name}.csv", table,
                f"{name}: map coordinates ({method}) and colours")
        d.figure(f"latent_map_{name}.png",
                 plots.latent_map_figure(coords, colours, axis_labels=labels,
                                         title=f"{name}: latent map ({method}, {view.label})"),
                 f"{name}: {method.upper()} map of the {view.spec.encoder.latent_size}-D "
                 f"latent over {len(coords)} rows, coloured by " + ", ".join(colours) + ".")
        scales[name] = {"map_method": method}
        seconds[f"map/{name}"] = time.perf_counter() - t0
    return d.done({"scales": scales}, seconds)


__all__ = ["section_activity", "section_attributions", "section_correlations", "section_maps",
           "section_scan"]
