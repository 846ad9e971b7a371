"""A scale of a trained run evaluated on its own data rows through the explained model.

Which model is explained: latents of different folds are not aligned (unit j of fold 0 need
not mean what unit j of fold 1 means), so each scale is explained through ONE of its trained
models (``trained.representative``: the one that feeds downstream scales, else fold
chain.feed_fold); ``fold=`` overrides. Upstream scales enter exactly as they fed that model in
training. Every model's latent is kept too (latent activity is tabulated for every model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import numpy as np

from .. import trained
from ..chain import TrainedChain
from ..config import ScaleSpec, resolve_data_path
from ..data import ScaleData, encode_targets, read_table
from ..errors import NestedAEError
from ..model import ScaleModel
from ..nesting import Chain
from ..splits import Folds


@dataclass
class ScaleView:
    """One scale of a run on its own N data rows, through the explained model (L: the
    scale's latent size)."""

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
    all_latents: np.ndarray = field(default=None)  # (models, N, L): every model's latent


def explained_index(run: TrainedChain, name: str, fold: int | None = None) -> tuple[int, str]:
    """The model that represents scale ``name``.

    Args: fold: None for ``trained.representative``, else this model index (checked).
    Returns: (index along the scale's model axis, label such as "fold 0").
    """
    scale = run.trained[name]
    if fold is not None:
        total = scale.n_models
        if not 0 <= fold < total:
            raise NestedAEError(f"--fold {fold}: scale '{name}' has models 0..{total - 1}")
        return fold, trained.model_label(scale, fold)
    feeds = any(name in s.upstream for s in run.config.scales)
    return trained.representative(scale, run.config.chain, feeds)


def scale_view(run: TrainedChain, name: str, *, fold: int | None = None,
               data_root: str | None = None) -> ScaleView:
    """Read scale ``name``'s data file and run the chain on it through the explained model
    (one copy of ``TrainedChain.copies``: upstream scales fed as in training).

    Args: fold: the model to explain (see :func:`explained_index`); data_root: folder for
    relative data paths.
    Returns: the :class:`ScaleView` of the file's N rows (outputs.latent (N, L),
    all_latents (models, N, L)).
    """
    spec = run.specs[name]
    upto = run.upto(name)
    path = resolve_data_path(spec.data, run.path, data_root)
    source = str(path)
    frame = read_table(path, spec.column_names)
    categories = run.trained[name].categories
    raw = run.inputs(frame, scale=name, source=source)
    index, label = explained_index(run, name, fold)
    chain, copies = run.copies(name, np.array([index]), rows=raw)
    cp = jax.tree.map(lambda a: a[0], copies)  # the one copy
    outs = jax.jit(chain.apply)(cp, raw)
    inputs = {g: np.asarray(v) for g, v in raw[name].items()}
    for g in spec.inputs:
        if g.kind == "latent":
            inputs[g.name] = np.asarray(outs[g.scale].latent)
    targets = encode_targets(spec, frame, categories, source)
    data = ScaleData(frame, inputs, targets, categories, source)
    ls = run.trained[name]
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
                     folds, np.asarray(every))


def scale_views(run: TrainedChain, *, fold: int | None = None, data_root: str | None = None
                ) -> tuple[dict[str, ScaleView], dict[str, float]]:
    """Every scale's view (:func:`scale_view`), in the config's order.

    Returns ({SCALE: ScaleView}, {"load/SCALE": wall seconds}).
    """
    views, seconds = {}, {}
    for spec in run.config.scales:
        t0 = time.perf_counter()
        views[spec.name] = scale_view(run, spec.name, fold=fold, data_root=data_root)
        seconds[f"load/{spec.name}"] = time.perf_counter() - t0
    return views, seconds


__all__ = ["ScaleView", "explained_index", "scale_view", "scale_views"]
