"""Hyper-parameter sweeps: every combination of a grid, trained in as few compiled calls as
the array shapes allow.

Settings that only change numbers — seed, learning rate, L1/L2 weights, dropout rates, loss
weights — become per-model values of one ``vmap``ped program (with the folds), so a 20-seed x
5-fold sweep is one compile and one call. The latent size joins them by masking: combinations
that differ in it train in the program of the widest, each model with the latent mask of its
own size and its own narrow network's initial weights zero-padded (``fitting.narrow_init``),
which trains to the narrow network's numbers (built-in networks; a scale with a module of its
own keeps one program per latent size). Settings that change other shapes or the program
(hidden widths, batch size, epochs, activations, ...) split the combinations into groups, each
compiled once.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np
import pandas as pd

from . import links
from .config import Config, ScaleSpec, override, parse_value
from .errors import ConfigError, NestedAEError
from .evaluation import diverged_models, metric_columns, scale_metrics
from .fitting import (Replica, check_snapshots, fit_models, latent_maskable, narrow_init,
                      replica_layout)
from .nested_chain import n_entities, nested_latents, nested_leaky_rows, upstream_nested
from .nesting import row_columns, upstream_of
from .runner import chain_report, fit_config, plan_chain, prepare_scale, trained_record
from .ranking import finite_members, top_k
from .selection import NestedFolds, nested_folds, per_model_inputs, select, with_nested
from .splits import assign_folds, groups_from_rows, make_folds
from .model import scale_dims, scale_model
from .training import hyperparameters

# per-model (vectorised) settings: (table, field); heads.* means every head
_VECTORISED = {("training", "learning_rate"), ("training", "seed"), ("encoder", "l1"),
               ("encoder", "l2"), ("encoder", "dropout"), ("heads", "l1"), ("heads", "l2"),
               ("heads", "dropout"), ("heads", "weight")}
_PLACEHOLDER = {"learning_rate": 1e-3, "seed": 0, "weight": 1.0}


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["encoder.l1=0,0.01", "encoder.hidden=[8],[16,16]"]`` -> {key: [values]}; commas
    inside brackets do not split."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,...")
        values, depth, current = [], 0, ""
        for ch in text:
            depth += (ch == "[") - (ch == "]")
            if ch == "," and depth == 0:
                values.append(current)
                current = ""
            else:
                current += ch
        values.append(current)
        grid[key.strip()] = [parse_value(v.strip()) for v in values]
    return grid


def relative_keys(grid: dict[str, list], cfg: Config, scale: str | None = None
                  ) -> dict[str, list]:
    """Grid keys relative to the swept scale (default: the last): a key that starts with its
    name (``solvent.encoder.l1`` for ``--scale solvent``) loses it; one that starts with
    another scale's name is an error saying that keys are relative to the swept scale."""
    target = cfg.scale(scale or cfg.scales[-1].name).name
    out = {}
    for key, values in grid.items():
        first, _, rest = key.partition(".")
        if first == target and rest:
            key = rest
        elif first in cfg.specs and rest:
            raise ConfigError(f"--grid {key}: grid keys are relative to the swept scale "
                              f"'{target}' (e.g. encoder.l1); to sweep scale '{first}' use "
                              f"--scale {first}")
        out[key] = values
    return out


def combinations(grid: dict[str, list]) -> list[dict[str, Any]]:
    """The cartesian product of a grid, as a list of {key: value}."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _canonical(spec: ScaleSpec, nonzero: set[tuple[str, str, str]]) -> ScaleSpec:
    """The spec with every vectorised setting replaced by a placeholder, so that combinations
    differing only in those settings compile to the same program (the latent size too, when
    it can be masked: the group then trains at its widest, :func:`_widest`). A penalty or
    dropout rate that is non-zero in any combination stays non-zero (so the program applies
    it)."""
    def fix(obj, table: str, name: str = ""):
        changes = {}
        for f in ("learning_rate", "seed", "l1", "l2", "dropout", "weight"):
            if (table, f) in _VECTORISED and hasattr(obj, f):
                changes[f] = _PLACEHOLDER.get(f, 0.5 if (table, name, f) in nonzero else 0.0)
        return dataclasses.replace(obj, **changes)
    encoder = fix(spec.encoder, "encoder")
    if latent_maskable(spec):
        encoder = dataclasses.replace(encoder, latent_size=1)
    return dataclasses.replace(spec, training=fix(spec.training, "training"), encoder=encoder,
                               heads=tuple(fix(h, "heads", h.name) for h in spec.heads))


def _widest(canon: ScaleSpec, members: list[ScaleSpec]) -> ScaleSpec:
    """A group's program: its canonical spec at the widest latent of its members."""
    width = max(s.encoder.latent_size for s in members)
    return dataclasses.replace(canon, encoder=dataclasses.replace(canon.encoder,
                                                                  latent_size=width))


def _nonzero_settings(specs: list[ScaleSpec]) -> set[tuple[str, str, str]]:
    out = set()
    for s in specs:
        for f in ("l1", "l2", "dropout"):
            if getattr(s.encoder, f):
                out.add(("encoder", "", f))
            out |= {("heads", h.name, f) for h in s.heads if getattr(h, f)}
    return out


@dataclass
class SweepResult:
    """runs: one row per combination (settings, pooled validation metrics per head; with
    ``lengths``, one per combination and training length, combination-major, and so every
    per-combination field below); folds: one row per combination and fold; best: the best
    row of ``runs``."""

    runs: pd.DataFrame
    folds: pd.DataFrame
    best: dict
    metric: str
    n_groups: int
    n_models: int
    seconds: float
    nested: dict | None = None        # outer_folds > 0: see selection.select
    outer: pd.DataFrame | None = None  # per outer fold: chosen setting, inner and outer error
    chain: dict | None = None  # leaky validation rows (runner.chain_report; nested: also
    #                            nested_leaky_val_rows); {} when the scale takes no latent
    nested_folds: NestedFolds | None = None  # the nested models' masks
    nested_outputs: list | None = None  # per combination: the nested models' outputs
    inner_errors: np.ndarray | None = None  # (combinations, outer folds): pooled inner metric
    prepare_seconds: float = 0.0  # upstream training and data before the combinations
    #                               (0 when read back from ``reuse``)


def default_metric(spec: ScaleSpec) -> str:
    """The first regression head's MAE (else the first head's first metric)."""
    head = next((h for h in spec.heads if h.kind == "regression"), spec.heads[0])
    return f"{head.name}.{'accuracy' if head.kind == 'categorical' else 'mae'}"


def maximised(metric: str) -> bool:
    """Whether a larger ``metric`` is better (R2, accuracy; errors are minimised)."""
    return metric.endswith((".r2", ".accuracy"))


def sweep(cfg: Config, grid: dict[str, list] | list[dict], *, scale: str | None = None,
          seeds: int | None = None, data_root: str | None = None,
          progress: Callable[[str], None] | None = None, metric: str | None = None,
          devices: list | None = None, outer_folds: int = 0,
          allowed: np.ndarray | None = None, ensemble: int = 1,
          lengths: Sequence[int] = (), reuse: dict | None = None) -> SweepResult:
    """Train every combination of ``grid`` (keys: settings of the swept scale, e.g.
    ``encoder.l1`` or ``heads.gap.dropout``; a list of {KEY: value} is taken as the
    combinations themselves) with cross-validation; ``seeds`` adds a grid over
    training.seed = 0..seeds-1. Upstream scales of a chain are trained once, as configured,
    for the sweep's own folds. outer_folds: also run nested cross-validation with this many
    outer folds (see :mod:`selection`): the chosen setting's error on rows that took no part
    in choosing it; the upstream scales then also train one model per nested model, without
    its validation entities (:mod:`nested_chain`), and every scaler of the chain is fitted on
    training rows; allowed: (combinations, outer_folds) bool, the combinations each outer
    fold may choose from (default all); ensemble > 1: also score the mean prediction of each
    outer fold's ``ensemble`` best combinations (``nested["ensemble"]``, see
    :func:`selection.select`); lengths: training lengths (epochs, at most every combination's
    training.epochs) scored from the same run (``fitting.fit_models`` snapshots): each
    combination counts as one per length, {**combination, "training.epochs": L}, combination-
    major (``allowed`` and every result row in that order). reuse: a dict kept between
    sweeps of the same config (``tune``'s rungs): what comes before the swept scale's
    training (the upstream models, plain and nested, the swept scale's data and folds,
    :class:`Prepared`) is made once and read back, as it would come out the same.
    """
    start = time.perf_counter()
    target = cfg.scale(scale or cfg.scales[-1].name)
    cfg, refit = _train_row_scalers(cfg, target.name) if outer_folds else (cfg, [])
    if refit and progress:
        progress(f"nested cross-validation: scaler = 'train' for {', '.join(refit)} (a scaler "
                 "fitted on all rows would see the outer validation rows)")
    target = cfg.scale(target.name)
    combos, specs = _settings(cfg, target, grid, seeds, outer_folds)
    lengths = _check_lengths(specs, combos, lengths, allowed)
    key = (cfg, target.name, outer_folds, data_root)
    prep = None if reuse is None else reuse.get(key)
    fresh = prep is None
    if fresh:
        prep = _prepare(cfg, target, data_root, outer_folds, progress, devices)
        if reuse is not None:
            reuse[key] = prep
    plan, data, folds, nested = prep.plan, prep.data, prep.folds, prep.nested
    chain = dict(prep.chain)
    metric = metric or default_metric(target)
    maximise = maximised(metric)
    nonzero = _nonzero_settings(specs)
    groups: dict[ScaleSpec, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(_canonical(s, nonzero), []).append(i)
    results: dict[int, tuple] = {}
    n_models = 0
    for g, (canon, members) in enumerate(groups.items()):
        if progress:
            progress(f"sweep group {g + 1}/{len(groups)}: {len(members)} combination(s) x "
                     f"folds in one compiled call")
        canon = _widest(canon, [specs[i] for i in members])
        fitted, models = _fit_group(cfg, target, canon, [specs[i] for i in members],
                                    [combos[i] for i in members], data, folds, nested, plan,
                                    f"{target.name} group {g + 1}", progress, devices, lengths)
        results.update(zip(members, fitted))
        n_models += models
    ordered = [row for i in range(len(combos)) for row in results[i]]
    combos = [at for c in combos for at in at_lengths(c, lengths)]
    runs = pd.DataFrame([{"run": i, **row} for i, (row, _, _) in enumerate(ordered)])
    fold_rows = [{"run": i, **r} for i, (_, rows, _) in enumerate(ordered) for r in rows]
    nested_outputs = [out for _, _, out in ordered] if nested is not None else None
    if metric not in runs:
        raise ConfigError(f"sweep --metric {metric!r} is not a reported metric; choose from "
                          f"{[c for c in runs.columns if '.' in c]}")
    if progress and runs["diverged"].any():
        progress(f"sweep: {int((runs['diverged'] > 0).sum())} of {len(runs)} run rows have "
                 "models that diverged (non-finite training loss; column diverged): a row "
                 "whose own fold models did has NaN metrics, and a setting never joins a "
                 "choice in an outer fold where one of its models did")
    values = runs[metric].to_numpy(float)[:, None]
    try:
        pick = finite_members(top_k(values, None, 1, maximise), values, None,
                              f"sweep, best by {metric}")[0][0]
    except NestedAEError as err:
        raise AllDiverged(str(err), runs, pd.DataFrame(fold_rows)) from None
    best = runs.loc[pick].to_dict()
    summary = outer = inner = None
    if nested is not None:
        summary, outer, inner = select(target, combos, nested_outputs, data.targets, nested,
                                       metric, maximise, allowed, ensemble)
        summary["same_folds"] = float(best[metric])
        summary["scaler_train"] = refit
    return SweepResult(runs, pd.DataFrame(fold_rows), best, metric, len(groups), n_models,
                       time.perf_counter() - start, summary, outer, chain, nested,
                       nested_outputs, inner, prep.seconds if fresh else 0.0)


class AllDiverged(NestedAEError):
    """Every combination of a sweep diverged; ``runs`` and ``folds`` are its tables (the
    ``diverged`` column says how many models of each went bad), for the CLI to write."""

    def __init__(self, message: str, runs: pd.DataFrame, folds: pd.DataFrame):
        super().__init__(message)
        self.runs, self.folds = runs, folds


class Prepared(NamedTuple):
    """What a sweep trains on, made before any combination trains: the chain's plan, the
    swept scale's data (with every nested model's upstream latents under nested CV) and
    folds, its leaky-row report, the nested folds (or None), and the seconds it took."""

    plan: Any
    data: Any
    folds: Any
    chain: dict
    nested: NestedFolds | None
    seconds: float


def _prepare(cfg: Config, target: ScaleSpec, data_root: str | None, outer_folds: int,
             progress, devices) -> Prepared:
    """The upstream scales trained as configured (and, under nested CV, one upstream model
    per nested model), and the swept scale's data and folds (:class:`Prepared`)."""
    start = time.perf_counter()
    position = [s.name for s in cfg.scales].index(target.name)
    upstream = fit_config(cfg, data_root=data_root, progress=progress,
                          stop_before=target.name).trained if position else {}
    plan = plan_chain(cfg, data_root=data_root)
    data, folds, feeders = prepare_scale(cfg, target, upstream, plan)
    chain = _chain_report(cfg, target, upstream, plan, data, folds, feeders)
    nested = None
    if outer_folds:
        nested, data = _nested_inputs(cfg, target, data, folds, plan, outer_folds, chain,
                                      progress, devices)
    return Prepared(plan, data, folds, chain, nested, time.perf_counter() - start)


def _settings(cfg: Config, target: ScaleSpec, grid, seeds: int | None, outer_folds: int
              ) -> tuple[list[dict], list[ScaleSpec]]:
    """The sweep's combinations ({KEY: value} each) and the swept scale's spec under each,
    checked: something to sweep, no ensembles, validation rows, no epochs chosen on outer
    rows under nested CV."""
    given = list(grid) if isinstance(grid, list) else None
    grid = {} if given is not None else relative_keys(dict(grid), cfg, target.name)
    if seeds:
        grid["training.seed"] = list(range(seeds))
    if not grid and not given:
        raise ConfigError("sweep: give at least one --grid KEY=V1,V2 or --seeds N")
    combos = [{**c, **g} for c in given or [{}] for g in combinations(grid)]
    specs = [override(cfg, {f"{target.name}.{k}": v for k, v in c.items()}).scale(target.name)
             for c in combos]
    if any(s.training.ensemble > 1 for s in specs):
        raise ConfigError(f"sweep: scales.{target.name}.training.ensemble > 1 is not swept; "
                          "set it to 1 and use --seeds N for seed replicas")
    if any(s.cv.kind == "none" for s in specs):
        raise ConfigError(f"sweep: scales.{target.name}.cv.kind = 'none' has no validation "
                          "rows to compare combinations on; use kfold, group or stratified")
    if outer_folds:
        _refuse_best_epoch(cfg, target, specs)
    return combos, specs


def _nested_inputs(cfg: Config, target: ScaleSpec, data, folds, plan, k: int, chain: dict,
                   progress, devices) -> tuple[NestedFolds, object]:
    """The nested folds and the swept scale's data with every nested model's upstream
    latents (:mod:`nested_chain`); adds the nested leaky-row count (0) to ``chain``."""
    nested, outer_default = _outer_folds(cfg, target, data, folds, plan, k)
    if target.upstream:
        up_nested, masks = upstream_nested(cfg, target, plan, nested, outer_default,
                                           progress, devices)
        latents = nested_latents(cfg, target, data, up_nested, nested.train.shape[0])
        data = data.with_inputs(**per_model_inputs(data.inputs, folds.n_models, latents))
        chain["nested_leaky_val_rows"] = nested_leaky_rows(plan, target.name, nested, masks)
    return nested, data


def _fit_group(cfg: Config, target: ScaleSpec, canon: ScaleSpec, specs: list[ScaleSpec],
               combos: list[dict], data, folds, nested: NestedFolds | None, plan, label: str,
               progress, devices, lengths: tuple[int, ...] = ()) -> tuple[list[list], int]:
    """One compiled call for the combinations of one shape group: per combination a list of
    (its run row of pooled metrics, its per-fold rows, its nested models' outputs or None),
    one per training length (``lengths``; else one, at its training.epochs), and the number
    of models trained."""
    if canon.cv != target.cv and target.name in plan.fold_ids:
        raise ConfigError(f"sweep: cv settings of scale '{target.name}' are not swept "
                          "under chain.split = matched (its folds are shared with the "
                          "linked scales); sweep them with chain.split = independent")
    if canon.cv != target.cv and nested is not None:
        raise ConfigError("sweep --outer-folds: cv settings are not swept in nested "
                          "cross-validation (the outer and inner folds come from the config)")
    group_folds = folds if canon.cv == target.cv else make_folds(
        canon, data, row_columns(cfg.specs, target.name))
    layout_folds = group_folds if nested is None else with_nested(group_folds, nested)
    width = canon.encoder.latent_size
    mixed = any(s.encoder.latent_size < width for s in specs)  # then masked (module docstring)
    replicas = [Replica(s.training.seed, hyperparameters(s),
                        (np.arange(width) < s.encoder.latent_size).astype(np.float32)
                        if mixed else None) for s in specs]
    layout = replica_layout(canon, layout_folds, replicas)
    init = None
    if mixed:
        init = narrow_init(scale_model(canon, scale_dims(canon, data)), specs,
                           layout_folds.n_models)
    fit = fit_models(canon, data, layout, init_params=init, progress=progress, label=label,
                     devices=devices, snapshots=lengths, keep_diverged=True)
    per, total = group_folds.n_models, layout_folds.n_models
    scored = fit.snapshots if lengths else (fit.outputs,)
    out = [[_scored(spec, at, jax.tree.map(lambda a: a[r * total:(r + 1) * total], outputs),
                    per, data, group_folds, nested is not None)
            for at, outputs in zip(at_lengths(combo, lengths), scored)]
           for r, (spec, combo) in enumerate(zip(specs, combos))]
    return out, total * len(specs)


def at_lengths(combo: dict, lengths: tuple[int, ...]) -> list[dict]:
    """A combination as scored at each training length (itself when no lengths are given)."""
    return [{**combo, "training.epochs": int(n)} for n in lengths] or [combo]


def _check_lengths(specs: list[ScaleSpec], combos: list[dict], lengths: Sequence[int],
                   allowed: np.ndarray | None) -> tuple[int, ...]:
    """``sweep(lengths=...)`` checked before anything trains: lengths every combination's
    run reaches, select = last, training.epochs not swept, ``allowed`` of the expanded
    shape (a row per combination and length)."""
    lengths = tuple(lengths)
    if lengths and len({c.get("training.epochs") for c in combos}) > 1:
        raise ConfigError("sweep: training lengths are scored from one run; do not also "
                          "sweep training.epochs")
    for spec in specs:
        check_snapshots(spec, lengths, spec.training.epochs)
    rows = len(combos) * max(1, len(lengths))
    if allowed is not None and allowed.shape[0] != rows:
        raise ConfigError(f"sweep: allowed has {allowed.shape[0]} rows; expected one per "
                          f"combination and length ({rows})")
    return lengths


def _scored(spec: ScaleSpec, combo: dict, outputs, per: int, data, folds,
            nested: bool) -> tuple:
    """One combination's (run row of pooled metrics, per-fold rows, nested models' outputs or
    None) from its models' ``outputs``: the ``per`` models of its own folds, then (nested)
    its nested models. A model that diverged (``evaluation.diverged_models``) makes its
    fold's metrics NaN, and the combination's pooled ones; ``diverged`` counts its models
    that did."""
    own = jax.tree.map(lambda a: a[:per], outputs)
    inner = jax.tree.map(lambda a: a[per:], outputs) if nested else None
    m = scale_metrics(spec, own, data.targets, folds.train, folds.val, folds.fold_of_row,
                      folds.n_cv)
    bad = diverged_models(outputs)
    pooled = _nan_if(bad[:per].any(),
                     metric_columns({h: v.get("pooled_val", {}) for h, v in m["heads"].items()}))
    folds_rows = [{**combo, "fold": f, **_nan_if(bad[f], metric_columns(fm["val"]))}
                  for f, fm in enumerate(m["folds"])]
    return {**combo, **pooled, "diverged": int(bad.sum())}, folds_rows, inner


def _nan_if(bad: bool, columns: dict) -> dict:
    """Metric ``columns`` as they are, or all NaN when ``bad`` (a model diverged)."""
    return {k: float("nan") for k in columns} if bad else columns


def _train_row_scalers(cfg: Config, target: str) -> tuple[Config, list[str]]:
    """``cfg`` with scaler = 'train' on ``target`` and every scale upstream of it that fits
    its scaler on all rows (under nested CV every model's statistics come from its own
    training rows), and the names of the scales changed."""
    names = [n for n in [*upstream_of(cfg, target), target] if cfg.scale(n).scaler == "all"]
    return override(cfg, {f"{n}.scaler": "train" for n in names}), names


def _refuse_best_epoch(cfg: Config, target: ScaleSpec, specs: list[ScaleSpec]) -> None:
    """training.select = best picks each model's epoch on its validation rows: for an outer
    model (or an upstream nested model) those are rows the nested estimate is scored on."""
    names = [*upstream_of(cfg, target.name), target.name]
    bad = [s.name for s in [*(cfg.scale(n) for n in names), *specs]
           if s.training.select == "best"]
    if bad:
        raise ConfigError(f"sweep --outer-folds: scales.{bad[0]}.training.select = 'best' "
                          "would choose epochs on the outer validation rows; use select = "
                          "'last' under nested cross-validation")


def _chain_report(cfg: Config, target: ScaleSpec, upstream: dict, plan, data, folds,
                  feeders: dict) -> dict:
    """`train`'s leaky-row count (runner.chain_report) for the sweep's own folds of the
    swept scale: {"split", "scales": {SCALE: {"val_rows", "leaky_val_rows"}}}; {} unchained."""
    if not target.upstream:
        return {}
    record = trained_record(target, data, folds, feeders, None, None)
    report = chain_report(cfg, {**upstream, target.name: record}, plan)
    return {"split": report["split"], "scales": {target.name: report["scales"][target.name]}}


def _outer_folds(cfg: Config, target: ScaleSpec, data, folds, plan, k: int):
    """The nested folds of a sweep and, for a scale that takes latents, the outer fold of
    every entity of the chain (E,) that it does not decide (-1: none; else None).

    outer = the matched folds of a chain that shares them (k must be their number), else
    KFold with the scale's random_state: GroupKFold by entity for a scale that takes latents
    (see ``links``), by identical input rows for cv = group; inner = the scale's cv.n_splits
    within each outer training set, grouped alike."""
    cv = target.cv
    if k < 2:
        raise ConfigError(f"sweep --outer-folds {k}: use at least 2")
    groups = outer_default = None
    if cv.kind == "group":
        cols = list(cv.group_by) or row_columns(cfg.specs, target.name)
        groups = groups_from_rows(data.frame[cols].to_numpy())
    if target.upstream or target.name in plan.fold_ids:  # entities (and cv groups) whole
        ent = plan.entities[target.name]
        groups = ent if groups is None else links.joint_groups(ent, groups)
    if target.upstream:
        outer_default = np.full(n_entities(plan), -1, np.int32)
    if target.name in plan.fold_ids:
        if k != folds.n_cv:
            raise ConfigError(f"sweep --outer-folds {k}: scale '{target.name}' shares its "
                              f"{folds.n_cv} matched folds with the chain; use --outer-folds "
                              f"{folds.n_cv}")
        outer = folds.fold_of_row
        for name, ids in plan.fold_ids.items() if outer_default is not None else ():
            outer_default[plan.entities[name]] = ids
    else:
        outer = assign_folds(data.n_rows, kind="kfold" if groups is None else "group",
                             n_splits=k, shuffle=True, random_state=cv.random_state,
                             groups=groups)
    return nested_folds(outer, cv.n_splits, cv.random_state + 1, groups), outer_default
