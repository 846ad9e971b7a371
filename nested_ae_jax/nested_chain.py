"""Upstream models for nested cross-validation of a chained scale: every nested model fed by
upstream models that never saw its validation entities.

A sweep with ``--outer-folds K`` of a scale that takes latents (``I`` inner folds) gives every
upstream scale K x (I + 1) extra models, trained in one compiled call per scale: model
``o*(I+1) + i`` on the entities outside outer fold o and inner fold i, model ``o*(I+1) + I``
on the entities outside outer fold o: the entity sets of the swept scale's nested models
(:class:`selection.NestedFolds`), carried to every linked scale through the shared entity ids
of ``links``. Nested model j of the swept scale takes its latent from upstream model j, which
takes its own from model j of its upstream scales; so neither an inner nor an outer
validation row, nor another row of its entity, reaches the training of a model that produces
its features, in either chain.split mode (independent only decides which upstream models feed
the sweep's own folds).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import links
from .config import Config, ScaleSpec
from .data import ScaleData
from .fitting import fit_models, replica_layout
from .nesting import upstream_of
from .runner import ChainPlan, trained_record
from .selection import NestedFolds, nested_masks
from .splits import Folds
from .trained import TrainedScale, feed_latents


def n_entities(plan: ChainPlan) -> int:
    return int(max(e.max() for e in plan.entities.values())) + 1


def entity_tables(nested: NestedFolds, entities: np.ndarray, outer_default: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The swept scale's nested folds per entity: outer (E,) and inner (K, E). Entities with
    no row in the swept scale keep ``outer_default`` (E,) (-1: never an outer validation
    entity) and train every inner model of the outer folds they are not in (inner = I)."""
    outer = np.asarray(outer_default, np.int32).copy()
    outer[entities] = nested.outer
    inner = np.where(outer[None, :] == np.arange(nested.n_outer)[:, None], -1,
                     nested.n_inner).astype(np.int32)
    inner[:, entities] = nested.inner
    return outer, inner


def upstream_nested(cfg: Config, target: ScaleSpec, plan: ChainPlan, nested: NestedFolds,
                    outer_default: np.ndarray, progress: Callable | None = None,
                    devices: list | None = None
                    ) -> tuple[dict[str, TrainedScale], dict[str, NestedFolds]]:
    """Train the nested models of every scale upstream of ``target`` (see the module
    docstring). Returns ({SCALE: TrainedScale with M = K*(I+1) models per ensemble member},
    {SCALE: its NestedFolds on its own rows})."""
    specs = cfg.specs
    outer_e, inner_e = entity_tables(nested, plan.entities[target.name], outer_default)
    trained: dict[str, TrainedScale] = {}
    masks: dict[str, NestedFolds] = {}
    for name in upstream_of(specs, target.name):
        spec, ent = specs[name], plan.entities[name]
        masks[name] = nested_masks(outer_e[ent], inner_e[:, ent], nested.n_inner)
        folds = Folds(masks[name].outer, masks[name].train, masks[name].val)
        data = plan.data[name].with_inputs(**nested_latents(cfg, spec, plan.data[name],
                                                            trained, folds.n_models))
        if progress:
            progress(f"scale '{name}': {folds.n_models} nested models (outer x inner folds), "
                     f"{spec.training.epochs} epochs")
        fit = fit_models(spec, data, replica_layout(spec, folds), progress=progress,
                         label=f"{name} nested", devices=devices)
        own = {u: np.arange(folds.n_models)[:, None] for u in spec.upstream}
        trained[name] = trained_record(spec, data, folds, own, fit.params, fit.batch.stats)
    return trained, masks


def nested_latents(cfg: Config, spec: ScaleSpec, data: ScaleData,
                   trained: dict[str, TrainedScale], n_models: int) -> dict[str, np.ndarray]:
    """{GROUP: (M, N, L)}: the latent of nested model j of every upstream scale for nested
    model j of ``spec`` (member 0 of an upstream ensemble, as ``trained.feeding_index``)."""
    specs = cfg.specs
    own = np.arange(n_models)[:, None]
    return {g.name: feed_latents(trained, specs, cfg.chain, g, data.frame, data.source, own)
            for g in spec.inputs if g.kind == "latent"}


def nested_leaky_rows(plan: ChainPlan, target: str, nested: NestedFolds,
                      masks: dict[str, NestedFolds]) -> int:
    """Validation rows of the swept scale's nested models whose latent came (at any level of
    the chain) from a nested upstream model trained on the same entity (0 by construction)."""
    e = n_entities(plan)
    own = np.arange(nested.train.shape[0])[:, None]
    feeders = [(own, links.trained_entities(m.train, plan.entities[u], e))
               for u, m in masks.items()]
    return links.leaky_rows(plan.entities[target], nested.val, feeders)
