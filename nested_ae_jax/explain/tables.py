"""Tables of a scale view: latent activity of every model, correlation matrices, and the
view's columns by name (descriptors, targets, latent-map colourings). Nothing is written."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import ScaleSpec
from . import analysis
from .views import ScaleView


def activity_table(view: ScaleView) -> pd.DataFrame:
    """Latent activity of every model of the scale, with each latent's Pearson r to every
    regression target (true values) on the scale's rows.

    Returns: models x L rows: scale, model, the columns of :func:`analysis.latent_activity`,
    explained (the explained model's rows), r[TARGET] per regression target column.
    """
    frames = []
    targets = target_columns(view)
    for m in range(view.all_latents.shape[0]):
        z = view.all_latents[m]
        t = analysis.latent_activity(z)
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
    """True values of every regression target column.

    Returns: {TARGET column: (N,) values}.
    """
    out = {}
    for h in view.spec.heads:
        if h.kind == "regression":
            y = np.asarray(view.data.targets[h.name])
            out.update({t: y[:, j] for j, t in enumerate(h.target)})
    return out


def descriptor_columns(view: ScaleView) -> dict[str, np.ndarray]:
    """The scale's inputs as named columns: numeric by column name, latent groups
    ``UP.latent_j``, categorical groups one indicator per class ``COLUMN=label``.

    Returns: {name: (N,) values}.
    """
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
    """Correlations among the explained model's latents, the descriptors and the targets.

    Returns: (Pearson r, adjusted correlation), each a square (V, V) frame over [latents,
    descriptors, targets] (:func:`descriptor_columns`, :func:`target_columns`), and the names
    of the L latent rows.
    """
    z = view.outputs.latent
    latents = {f"latent_{j}": z[:, j] for j in range(z.shape[1])}
    cols = {**latents, **descriptor_columns(view), **target_columns(view)}
    r = analysis.pearson_matrix(pd.DataFrame(cols))
    return r, analysis.adjusted_correlation(r, len(z)), list(latents)


def map_colours(view: ScaleView) -> dict[str, np.ndarray]:
    """Colourings of a latent map: every head's prediction (regression values, categorical
    predicted labels), the scale's categorical inputs, and upstream scales' regression
    predictions on these rows.

    Returns: {colouring name: (N,) values (float or label)}.
    """
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


__all__ = ["activity_table", "correlation_tables", "descriptor_columns", "map_colours",
           "target_columns"]
