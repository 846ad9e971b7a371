"""Trained scales and the one way to run a trained chain on rows.

A :class:`TrainedScale` is what training leaves behind and what a run directory loads back:
the model, its categories, parameters and scalers with a leading model axis (ensemble members
x [CV folds, all-rows model], member-major), the folds, and ``feeders``: for every upstream
scale, which of its models computed the latent that each of this scale's models was trained
on. Two rules live here and nowhere else:

- *which upstream model feeds the next scale* (:func:`feeding_index`, set at training time
  from ``[chain]`` and stored in ``feeders``), and
- *which models are averaged for a prediction* (:meth:`TrainedScale.models`: every fold of
  every ensemble member, or one fold's members).

A prediction runs one *copy* of the chain per chosen model of the target scale, each fed by
the upstream models that fed that model in training (:func:`chain_copies`), all copies in one
``vmap``; :func:`summarise` averages them (heads mean, std over copies). ``predict``,
``design``, ``explain``, ``suggest`` and ``compare`` all go through :func:`chain_copies` (by
way of ``chain.TrainedChain.copies``), so they agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .config import ChainSpec, InputGroup, ScaleSpec
from .data import Categories, fit_stats
from .evaluation import ensemble_summary
from .model import Params, ScaleModel, ScaleOutputs, Stats
from .nesting import Chain, ChainParams, ScaleEntry, chain_inputs, nest


@dataclass
class TrainedScale:
    """A trained scale (see the module docstring). params, stats: leading model axis M;
    fold_of_row: (N,) validation fold of each training row; feeders: {UPSTREAM: (M, K) int}
    (K > 1: the latents of K upstream models were averaged)."""

    model: ScaleModel
    categories: Categories
    params: Params
    stats: Stats
    fold_of_row: np.ndarray
    n_cv: int
    has_full: bool
    feeders: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def spec(self) -> ScaleSpec:
        return self.model.spec

    @property
    def members(self) -> int:
        return self.spec.training.ensemble

    @property
    def n_models(self) -> int:
        return (self.n_cv + int(self.has_full)) * self.members

    def models(self, fold: int | None = None) -> np.ndarray:
        """Positions of the models a prediction averages: every CV fold of every member
        (fold None), or fold ``fold`` of every member."""
        return model_indices(self.n_cv, self.has_full, self.members, fold)

    def pick(self, index) -> ScaleEntry:
        """The params and stats of the models at ``index`` (int, or an index array)."""
        return ScaleEntry(*jax.tree.map(lambda a: jnp.asarray(a)[index],
                                        (self.params, self.stats)))


def model_indices(n_cv: int, has_full: bool, members: int = 1,
                  fold: int | str | None = None) -> np.ndarray:
    """Positions on a scale's model axis (members x [CV folds, all-rows model], member-major)
    of: every CV model (fold None), one fold's members (int) or the all-rows models ("full")."""
    per = n_cv + int(has_full)
    folds = np.arange(n_cv) if fold is None else np.array([n_cv if fold == "full" else fold])
    return (np.arange(members)[:, None] * per + folds[None, :]).reshape(-1)


def feeding_index(chain: ChainSpec, up: TrainedScale) -> np.ndarray:
    """Positions on a trained scale's model axis of the model(s) whose latent feeds the next
    scale (averaged when several).

    Of an ensemble only member 0 feeds: the latent axes of differently seeded models do not
    line up, so their mean would blur the latents. fold_mean averages the fold models (all
    started from the same seed, as in the paper); all_rows takes the all-rows model.
    """
    if chain.feed == "all_rows":
        return model_indices(up.n_cv, up.has_full, 1, "full" if up.has_full else 0)
    if chain.feed == "fold_mean":
        return model_indices(up.n_cv, up.has_full, 1)
    return model_indices(up.n_cv, up.has_full, 1, min(chain.feed_fold, up.n_cv - 1))


def representative(scale: TrainedScale, chain: ChainSpec, feeds: bool) -> tuple[int, str]:
    """The one model that stands for a scale when its latents are interpreted (latents of
    different models do not line up): the model that feeds downstream scales when that is a
    single model (chain.split = independent), else fold ``chain.feed_fold`` of member 0.
    Returns (index, label)."""
    single_feeder = feeds and chain.split == "independent"
    index = feeding_index(chain, scale) if single_feeder else np.array([-1])
    if len(index) != 1 or index[0] < 0:
        index = model_indices(scale.n_cv, scale.has_full, 1,
                              min(chain.feed_fold, max(scale.n_cv - 1, 0)))
    i = int(index[0])
    return i, model_label(scale, i)


def model_label(scale: TrainedScale, index: int) -> str:
    """"fold k", "all-rows model" (and the ensemble member when there are several)."""
    per = scale.n_cv + int(scale.has_full)
    member, pos = divmod(index, per)
    text = "all-rows model" if pos >= scale.n_cv or scale.spec.cv.kind == "none" \
        else f"fold {pos}"
    return text + (f" member {member}" if scale.members > 1 else "")


# ----------------------------------------------------------------------------------------------
# Copies of a chain


def copy_indices(scales: dict[str, TrainedScale], target: str, models: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """For the target and every scale upstream of it: (C, K) positions on its model axis for
    each copy c of the chain (K > 1: averaged). ``models``: (C,) or (C, K) target positions.
    Upstream positions follow ``feeders`` of the first model of the copy at each level."""
    models = np.asarray(models)
    out = {target: models[:, None] if models.ndim == 1 else models}
    stack = [target]
    while stack:
        name = stack.pop()
        first = out[name][:, 0]
        for up, feeders in scales[name].feeders.items():
            out[up] = np.asarray(feeders)[first]
            stack.append(up)
    return out


def finetune_start(scales: dict[str, TrainedScale], last: str) -> dict[str, np.ndarray]:
    """{SCALE: (C,) position of the model that copy c of the jointly fine-tuned chain starts
    from}: copy c is the chain that predicts with the ``last`` scale's fold-c model, fed as in
    training (``finetune``)."""
    copies = copy_indices(scales, last, np.arange(scales[last].n_cv))
    return {n: copies[n][:, 0] for n in copies}


def chain_copies(scales: dict[str, TrainedScale], target: str, models: np.ndarray
                 ) -> tuple[Chain, ChainParams]:
    """The chain from the raw inputs to ``target``, with a leading copy axis C on every
    scale's entry (see :func:`copy_indices`); apply it with :func:`apply_copies`."""
    idx = copy_indices(scales, target, models)
    order = [n for n in scales if n in idx]
    averaged = frozenset(n for n in order if idx[n].shape[1] > 1)
    params = {n: scales[n].pick(idx[n] if n in averaged else idx[n][:, 0]) for n in order}
    return nest({n: scales[n].model for n in order}, averaged), params


def apply_copies(chain: Chain, params: ChainParams, inputs: dict) -> dict[str, ScaleOutputs]:
    """Every copy of the chain on the same rows: {SCALE: ScaleOutputs, leaves (C, N, ...)}.
    inputs: {SCALE: {GROUP: raw array (N, ...)}} (see ``nesting.chain_inputs``)."""
    return jax.vmap(chain.apply, in_axes=(0, None))(params, inputs)


def summarise(chain: Chain, outputs: dict[str, ScaleOutputs]
              ) -> dict[str, tuple[ScaleOutputs, dict]]:
    """{SCALE: (mean outputs, {HEAD: std})} over the copies (see
    ``evaluation.ensemble_summary``: heads averaged, latent of the first copy)."""
    return {n: ensemble_summary(chain.models[n].spec, o) for n, o in outputs.items()}


def refit_upstream(chain_spec: ChainSpec, chain: Chain, params: ChainParams, inputs: dict,
                   upstream: list[str]) -> ChainParams:
    """With chain.transfer_scaler = refit (the original program's defect), the numeric
    scalers of the ``upstream`` scales re-fitted on the rows in ``inputs``; otherwise
    ``params`` unchanged."""
    if chain_spec.transfer_scaler != "refit":
        return params
    params = dict(params)
    for up in upstream:
        stats = dict(params[up].stats)
        for g in chain.models[up].spec.inputs:
            if g.kind == "numeric":
                x = np.asarray(inputs[up][g.name])
                s = fit_stats(x, np.ones((1, len(x))), name=g.name, source="downstream rows")
                stats[g.name] = {k: jnp.broadcast_to(jnp.asarray(v[0]), stats[g.name][k].shape)
                                 for k, v in s.items()}
        params[up] = ScaleEntry(params[up].params, stats)
    return params


# ----------------------------------------------------------------------------------------------
# Training a downstream scale: latents of its rows


def feed_latents(scales: dict[str, TrainedScale], specs: dict[str, ScaleSpec],
                 chain_spec: ChainSpec, group: InputGroup, frame: pd.DataFrame, source: str,
                 feeders: np.ndarray) -> np.ndarray:
    """The upstream latent of ``group`` for every row of a downstream file, computed by the
    trained (frozen) upstream chain from the raw upstream columns of ``frame``.

    feeders: (M, K) upstream models feeding each of the M downstream models (K > 1:
    averaged). Returns (N, L) when every model is fed alike, else (M, N, L)."""
    unique, inverse = np.unique(np.asarray(feeders), axis=0, return_inverse=True)
    chain, params = chain_copies(scales, group.scale, unique)
    link = {**{n: specs[n] for n in chain.models},
            "__target__": ScaleSpec(name="__target__", data="", inputs=(group,), heads=())}
    cats = {**{n: scales[n].categories for n in chain.models},
            "__target__": Categories({}, {})}
    inputs = chain_inputs(link, cats, frame, "__target__", source)
    inputs.pop("__target__")
    params = refit_upstream(chain_spec, chain, params, inputs, [group.scale])
    run = jax.jit(lambda p, x: apply_copies(chain, p, x)[group.scale].latent)
    latents = np.asarray(run(params, inputs), np.float32)  # (U, N, L)
    return latents[0] if len(unique) == 1 else latents[inverse.reshape(-1)]
