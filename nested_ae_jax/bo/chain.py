"""Trained chains as feature maps for Bayesian optimisation: the objective, the candidate pool,
the ``latent`` and ``raw`` features, and the honest chain of a simulated campaign.

Feature spaces (``SPACES``):

- ``latent``: the latents of the scales upstream of the objective's scale plus that scale's
  own latent, of one chain copy (the first model of the objective's scale, fed by the upstream
  models that fed it in training: ``TrainedChain.predictions``; latents of different models do
  not line up, so they are never averaged);
- ``raw``: the candidates' raw input columns (the objective scale's own and its upstream
  scales', ``nesting.row_columns``), categoricals one-hot (the consumer standardises);
- ``ensemble``: no features: the mean and spread of several models' predictions.

Honesty. In a *simulated* campaign every candidate's target is known to the program but
must reach the strategy only once chosen. A feature map trained on the targets would leak
them (the latent space of a supervised autoencoder is shaped by its head). So the latent map
of a campaign comes from :func:`honest_chain`: the scales up to the objective's, each trained
as one model on all its rows (``cv.kind = "none"``: features, not scores), with every
regression head that predicts the campaign's target column given loss weight 0 *and* that
column replaced by 0 in the training data (unsupervised on the candidates' inputs, which are
known before any measurement in pool-based optimisation); other heads train as configured.
The map is then a function of the inputs only: ``tests/test_bo_chain.py`` builds it with the
real and with shuffled targets and gets the same features bit for bit. (The alternative,
retraining the downstream scale on the revealed rows each round, is what the ``ensemble``
method does with small MLPs on these features.) ``suggest`` on real data needs none of this:
only measured targets went into the run.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from ..config import Config, ScaleSpec, override
from ..data import Categories
from ..errors import ConfigError, DataError, did_you_mean
from ..model import group_features
from ..nesting import chain_inputs, column_maps, row_columns, upstream_of
from ..objectives import Objective, as_objective
from .campaign import merge_pool

SPACES = ("latent", "raw", "ensemble")


class HeadObjective(NamedTuple):
    """An :class:`~nested_ae_jax.objectives.Objective` resolved against a config: head
    ``head`` of scale ``scale``, which predicts data column ``column``."""

    objective: Objective
    scale: str
    head: str
    column: str

    @property
    def name(self) -> str:
        return f"{self.scale}.{self.head}"

    def describe(self) -> str:
        return self.objective.describe()


def parse_head_objective(objective: str | Objective, specs: dict[str, ScaleSpec]
                         ) -> HeadObjective:
    """An objective in the shared language (``max:SCALE.HEAD``, ``min:SCALE.HEAD``,
    ``target:SCALE.HEAD=VALUE``, the older ``target=VALUE:SCALE.HEAD``; or an
    :class:`Objective`) on a regression head with one target column -> HeadObjective."""
    o = as_objective(objective)
    text = objective if isinstance(objective, str) else o.describe()
    if o.weight != 1.0:
        raise ConfigError(f"objective '{text}': a weight has no effect on a campaign or a "
                          "suggestion (one head); leave it out")
    scale, dot, name = o.head.partition(".")
    if not dot or scale not in specs:
        raise ConfigError(f"objective '{text}': expected max:SCALE.HEAD, min:SCALE.HEAD or "
                          f"target:SCALE.HEAD=VALUE with a scale of the config "
                          f"({', '.join(specs)}){did_you_mean(scale, specs)}")
    heads = {h.name: h for h in specs[scale].heads if h.kind == "regression"}
    if name not in heads:
        raise ConfigError(f"objective '{text}': scale '{scale}' has no regression head "
                          f"'{name}'{did_you_mean(name, heads)} (regression heads: "
                          f"{', '.join(heads) or 'none'})")
    if len(heads[name].target) != 1:
        raise ConfigError(f"objective '{text}': head '{name}' predicts "
                          f"{len(heads[name].target)} columns; a campaign needs one")
    return HeadObjective(o, scale, name, heads[name].target[0])


def chain_scales(specs: dict[str, ScaleSpec], scale: str) -> list[str]:
    """``scale`` and the scales upstream of it, in dependency order (target last)."""
    return [*upstream_of(specs, scale), scale]


def pool_columns(specs: dict[str, ScaleSpec], scale: str) -> list[str]:
    """The raw columns that make up one candidate of ``scale`` (``nesting.row_columns``)."""
    return row_columns(specs, scale)


def categorical_columns(specs: dict[str, ScaleSpec], scale: str) -> dict[tuple[str, str], str]:
    """{(SCALE, GROUP): column in ``scale``'s file} of every categorical input of ``scale``
    and its upstream scales."""
    out = {}
    for name, cmap in column_maps(specs, scale).items():
        for g in specs[name].inputs:
            if g.kind == "categorical":
                out[(name, g.name)] = cmap.get(g.column, g.column)
    return out


def candidate_pool(frame: pd.DataFrame, specs: dict[str, ScaleSpec], target: HeadObjective,
                   source: str = "<data>") -> pd.DataFrame:
    """The distinct candidates of ``frame`` (rows of the objective scale's file): rows with
    identical raw inputs merged, the target column averaged, ``rows`` merged (see
    ``bo.merge_pool``); rows whose target is missing are left out."""
    cols = pool_columns(specs, target.scale)
    missing = [c for c in [*cols, target.column] if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: column '{missing[0]}' (a candidate input or the target) is "
                        f"missing{did_you_mean(missing[0], frame.columns)}")
    frame = frame[frame[target.column].notna()]
    return merge_pool(frame, cols, target.column)


def pool_categories(frame: pd.DataFrame, specs: dict[str, ScaleSpec], scale: str
                    ) -> dict[str, Categories]:
    """Categories of every scale up to ``scale`` fitted on the candidates' own labels (sorted),
    for raw features of a pool that no trained model has seen."""
    cats: dict[str, Categories] = {n: Categories({}, {}) for n in chain_scales(specs, scale)}
    for (name, group), col in categorical_columns(specs, scale).items():
        labels = tuple(sorted(frame[col].astype(str).unique()))
        cats[name].groups[group] = labels
    return cats


def raw_features(inputs: dict, specs: dict[str, ScaleSpec], categories: dict[str, Categories],
                 scale: str, xp=np):
    """Raw features (N, D) from raw chain inputs {SCALE: {GROUP: array}} (``chain_inputs``, or
    a Designer's): every numeric group of ``scale`` and its upstream scales, and every
    categorical group one-hot (:func:`~nested_ae_jax.model.group_features`, unstandardised),
    concatenated in scale and group order. ``xp``: numpy, or jax.numpy for a traceable map."""
    parts = [group_features(g.kind, inputs[name][g.name], len(categories[name].groups[g.name])
                            if g.kind == "categorical" else 0, xp=xp)
             for name in chain_scales(specs, scale) for g in specs[name].inputs
             if g.kind in ("numeric", "categorical")]
    return xp.concatenate([xp.asarray(p, xp.float32) for p in parts], axis=1)


def frame_raw_features(frame: pd.DataFrame, specs: dict[str, ScaleSpec],
                       categories: dict[str, Categories], scale: str,
                       source: str = "<data>") -> np.ndarray:
    """:func:`raw_features` of the rows of a frame with ``scale``'s raw columns."""
    names = chain_scales(specs, scale)
    inputs = chain_inputs({n: specs[n] for n in names}, categories, frame, scale, source)
    return np.asarray(raw_features(inputs, specs, categories, scale), np.float32)


def latent_features(predictions: dict, specs: dict[str, ScaleSpec], scale: str) -> np.ndarray:
    """Latent features (N, D) from ``TrainedChain.predictions``: the latents of the
    first chain copy of every scale up to ``scale``, concatenated (upstream first)."""
    return np.concatenate([np.asarray(predictions[n][0].latent, np.float32)
                           for n in chain_scales(specs, scale)], axis=1)


# ---------------------------------------------------------------------------------------------
# the honest chain of a simulated campaign


def blinded_heads(cfg: Config, target: HeadObjective) -> list[tuple[str, str]]:
    """(SCALE, HEAD) of every regression head up to the objective's scale that predicts the
    target column (trained with weight 0 on a zeroed column by :func:`honest_chain`)."""
    specs = cfg.specs
    return [(n, h.name) for n in chain_scales(specs, target.scale) for h in specs[n].heads
            if h.kind == "regression" and target.column in h.target]


def honest_config(cfg: Config, target: HeadObjective, epochs: int | None = None,
                  blind: bool = True) -> Config:
    """The scales up to the objective's, each one model on all rows (cv.kind = none), heads
    predicting the target column at weight 0 (``blind``), no joint fine-tuning, optionally
    ``epochs``."""
    specs = cfg.specs
    names = chain_scales(specs, target.scale)
    for n in names:
        for g in specs[n].inputs:
            cols = g.columns if g.kind == "numeric" else (g.column,)
            if target.column in cols:
                raise ConfigError(f"scale '{n}' takes the target column '{target.column}' as an "
                                  "input: no feature map of this chain can be blind to it")
    sub = dataclasses.replace(cfg, scales=tuple(s for s in cfg.scales if s.name in names))
    settings: dict = {"chain.split": "independent", "chain.feed": "fold", "chain.feed_fold": 0,
                      "chain.finetune_epochs": 0}
    for n in names:
        settings[f"{n}.cv.kind"] = "none"
        settings[f"{n}.training.checkpoint_every"] = 0
        if epochs is not None:
            settings[f"{n}.training.epochs"] = int(epochs)
    for n, h in blinded_heads(cfg, target) if blind else ():
        settings[f"{n}.heads.{h}.weight"] = 0.0
    return override(sub, settings)


def honest_frames(cfg: Config, target: HeadObjective, frames: dict[str, pd.DataFrame]
                  ) -> dict[str, pd.DataFrame]:
    """Copies of the frames of the scales with blinded heads, the target column set to 0."""
    out = dict(frames)
    for n in {n for n, _ in blinded_heads(cfg, target)}:
        if target.column in out[n].columns:
            out[n] = out[n].assign(**{target.column: 0.0})
    return out


def scale_frames(cfg: Config, names: list[str], data_root: str | None = None
                 ) -> dict[str, pd.DataFrame]:
    """The data file of every named scale, read whole."""
    from ..runner import scale_frame

    return {n: scale_frame(cfg, cfg.scale(n), data_root=data_root).frame for n in names}


def honest_chain(cfg: Config, target: HeadObjective, *, epochs: int | None = None,
                 data_root: str | None = None, frames: dict[str, pd.DataFrame] | None = None,
                 progress: Callable[[str], None] | None = None, blind: bool = True):
    """Train the honest chain (see the module docstring): the ``TrainedChain`` of the scales
    up to the objective's (its ``config``: the one they were trained with). ``frames``: the scales'
    data given in memory (default: read from the config's files). ``blind=False`` trains the
    target heads on every candidate's target as configured: a *leaky* map, for comparison
    with published protocols only (a simulated campaign on it has seen every answer)."""
    from ..runner import fit_config

    honest = honest_config(cfg, target, epochs, blind)
    names = [s.name for s in honest.scales]
    given = frames or {}
    read = scale_frames(cfg, [n for n in names if n not in given], data_root)
    data = {**read, **{n: given[n] for n in names if n in given}}
    if blind:
        data = honest_frames(cfg, target, data)
    return fit_config(honest, data_root=data_root, frames=data, progress=progress)


class LatentMap(NamedTuple):
    """The honest chain as a feature map of a pool: ``features`` (P, D) (``latent``),
    ``trained`` {SCALE: TrainedScale}, the ``config`` they were trained with, and
    ``predictions`` of the pool (``TrainedChain.predictions``)."""

    features: np.ndarray
    trained: dict
    config: Config
    predictions: dict


def honest_map(cfg: Config, target: HeadObjective, pool: pd.DataFrame, **kw) -> LatentMap:
    """The honest chain (:func:`honest_chain`, ``kw``) and its latents of a pool's candidates."""
    chain = honest_chain(cfg, target, **kw)
    predictions = chain.predictions(pool, scale=target.scale, source="<pool>")
    return LatentMap(latent_features(predictions, chain.specs, target.scale), chain.trained,
                     chain.config, predictions)


def honest_latents(cfg: Config, target: HeadObjective, pool: pd.DataFrame, **kw) -> np.ndarray:
    """The ``latent`` features (P, D) of a pool's candidates under the honest chain."""
    return honest_map(cfg, target, pool, **kw).features
