"""Baselines side by side on identical folds: ``nested-ae compare CONFIG``.

Two kinds of comparison, chosen from the config:

*Supervised chain* (a config whose scales have regression heads, e.g.
``experiments/perovskite/nested_pce.toml``). For every split kind asked for (``random``:
KFold; ``group_rows``: GroupKFold by identical encoder input rows, upstream raw columns
included; ``group_composition``: GroupKFold by the first scale's inputs, i.e. the composition)
every regression head of every scale is scored, on the same folds, by

- ``NestedAE``: the chain itself (``fit_config``),
- for a scale that takes an upstream latent: ``single AE (raw)``, the same scale with the
  latent inputs replaced by the upstream scale's raw inputs (read from this scale's file), and
  ``single AE (own)``, the same scale with its own inputs only; both one-scale configs built
  here from the chain config and trained with the package's own trainer,
- ``random forest``, ``ridge`` and ``mean`` (scikit-learn) on the scale's inputs (for a
  downstream scale: the raw single AE's inputs), standardised with the very statistics the
  autoencoder of the same fold used (the scale's ``scaler`` policy), one-hot categoricals.

Every model of a split uses the folds of the chain's run (``fold_of_row``); the AE models get
the same grouping columns explicitly and their folds are checked to be identical.

*Reconstruction chain* (no regression heads, e.g. ``experiments/synthetic/*.toml``): NestedAE
(every scale) vs one single autoencoder on all raw inputs with the last scale's encoder, over
``seeds`` seeds trained as one compiled model batch per scale (seeds x folds models; a
downstream scale gets each seed's own upstream latents by stacking one copy of its rows per
seed, each model training and validating on its copy only). The NestedAE figure is the mean of
the scales' reconstruction MAEs (the paper's convention), standardised units.

Tables are printed and written as Markdown and CSV (``compare.md``, ``compare.csv``), with the
fold assignment of every split (``folds.csv``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import io, nesting
from .config import (Config, EncoderSpec, HeadSpec, InputGroup, ScaleSpec, load_config,
                     replace_scale, resolve_data_path)
from .data import fit_stats, input_group_columns
from .errors import ConfigError, NestedAEError
from .evaluation import pooled_outputs, predict_models, regression_metrics, scale_metrics
from .model import scale_model
from .runner import (Folds, ScaleData, ScaleResult, fit_config, load_scale_data, make_folds,
                     progress_printer, scale_dims)
from .training import ModelBatch, hyperparameters, train_models

SPLITS = ("random", "group_rows", "group_composition")
SKLEARN_MODELS = ("random forest", "ridge", "mean")
Progress = Callable[[str], None]

TABLE_COLUMNS = ["target", "split", "model", "n", "mae", "rmse", "r2", "fold_mae_mean",
                 "fold_mae_std", "n_folds", "seconds"]
RECON_COLUMNS = ["data", "model", "seeds", "val_mae_mean", "val_mae_std", "train_mae_mean",
                 "train_mae_std", "seconds"]


@dataclass
class Comparison:
    """What :func:`compare` returns.

    table: one row per (target, split, model) (supervised) or per model (reconstruction).
    folds: {(split, scale): {model: (N,) validation fold of each row}}: the folds each model
    was scored on (all equal within a key; checked). fits: {split: FitResult} of the chain.
    kind: "supervised" or "reconstruction".
    """

    table: pd.DataFrame
    folds: dict = field(default_factory=dict)
    fits: dict = field(default_factory=dict)
    kind: str = "supervised"
    source: str = ""


# ----------------------------------------------------------------------------------------------
# Configs derived from the chain config


def with_epochs(cfg: Config, epochs: int | None) -> Config:
    """Every scale trained for ``epochs`` (None: as configured)."""
    if epochs is None:
        return cfg
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    for s in cfg.scales:
        cfg = replace_scale(cfg, s.name, **{"training.epochs": int(epochs)})
    return cfg


def _specs(cfg: Config) -> dict[str, ScaleSpec]:
    return {s.name: s for s in cfg.scales}


def raw_columns(cfg: Config, scale: str) -> dict[str, list[str]]:
    """{scale or ancestor: its own input columns as named in ``scale``'s data file}."""
    specs = _specs(cfg)
    maps = nesting.column_maps(specs, scale)
    return {name: [cmap.get(c, c) for c in input_group_columns(specs[name])]
            for name, cmap in maps.items()}


def _unique(cols: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(cols))


def group_columns(cfg: Config, scale: str, split: str) -> tuple[str, ...]:
    """The columns whose identical values form a CV group of ``scale`` for a split kind:
    group_rows: the whole raw encoder input row (own columns + upstream raw columns);
    group_composition: the raw inputs of the chain's first scale(s) (the composition)."""
    cols = raw_columns(cfg, scale)
    specs = _specs(cfg)
    if split == "group_rows":
        return _unique([c for name in cols for c in cols[name]])
    roots = [name for name in cols if not specs[name].upstream]
    return _unique([c for name in roots for c in cols[name]])


def _split_cv(cv, split: str, group_by: tuple[str, ...]):
    if split == "random":
        return dataclasses.replace(cv, kind="kfold", group_by=())
    return dataclasses.replace(cv, kind="group", group_by=group_by)


def split_config(cfg: Config, split: str) -> Config:
    """``cfg`` with every scale's cross-validation set to the split kind (n_splits, shuffle
    and random_state as configured)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    for s in cfg.scales:
        if s.cv.kind == "none":
            raise ConfigError(f"{cfg.source}: scale '{s.name}' has cv.kind = none; a comparison "
                              "needs cross-validation")
        cfg = replace_scale(cfg, s.name, cv=_split_cv(s.cv, split,
                                                      group_columns(cfg, s.name, split)))
    return cfg


def single_scale_config(cfg: Config, scale: str, *, raw_upstream: bool) -> Config:
    """A one-scale config of ``scale`` without the nesting: every latent input group is
    replaced by the upstream scales' own input groups read from this scale's file (raw_upstream)
    or dropped; heads that reconstruct a latent then reconstruct the raw group or are dropped."""
    specs = _specs(cfg)
    spec = specs[scale]
    maps = nesting.column_maps(specs, scale)
    inputs: list[InputGroup] = []
    heads: list[HeadSpec] = []
    replaced: dict[str, list[str]] = {}
    taken = {g.name for g in spec.inputs}
    for g in spec.inputs:
        if g.kind != "latent":
            inputs.append(g)
            continue
        replaced[g.name] = []
        if not raw_upstream:
            continue
        chain = [g.scale] + sorted(nesting._ancestors(specs, g.scale))
        for up in chain:
            for ug in specs[up].inputs:
                if ug.kind == "latent":
                    continue
                name = ug.name if ug.name not in taken else f"{up}_{ug.name}"
                taken.add(name)
                if ug.kind == "numeric":
                    cols = tuple(maps[up].get(c, c) for c in ug.columns)
                    new = InputGroup(name=name, kind="numeric", columns=cols)
                else:
                    new = InputGroup(name=name, kind="categorical",
                                     column=maps[up].get(ug.column, ug.column))
                inputs.append(new)
                replaced[g.name].append(name)
    for h in spec.heads:
        if h.input in replaced:
            for name in replaced[h.input]:
                kind = "categorical" if next(x for x in inputs if x.name == name).kind == \
                    "categorical" else "reconstruction"
                loss = "" if kind == "categorical" else h.loss
                heads.append(dataclasses.replace(h, name=name, kind=kind, input=name,
                                                 loss=loss, reference=()))
        else:
            heads.append(h)
    if not any(g.kind != "latent" for g in inputs):
        raise ConfigError(f"scale '{scale}' has no inputs of its own")
    new_spec = dataclasses.replace(spec, inputs=tuple(inputs), heads=tuple(heads))
    return dataclasses.replace(cfg, scales=(new_spec,))


# ----------------------------------------------------------------------------------------------
# Scores


def _fold_maes(fold_of_row: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([np.abs(p[fold_of_row == f] - y[fold_of_row == f]).mean()
                     for f in np.unique(fold_of_row[fold_of_row >= 0])])


def _score_row(target: str, split: str, model: str, y: np.ndarray, pred: np.ndarray,
               fold_of_row: np.ndarray, seconds: float) -> dict:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    y = y.reshape(len(y), -1)
    pred = pred.reshape(len(pred), -1)
    m = regression_metrics(y, pred)
    folds = _fold_maes(fold_of_row, y, pred)
    return {"target": target, "split": split, "model": model, "n": m["n"], "mae": m["mae"],
            "rmse": m["rmse"], "r2": m["r2"], "fold_mae_mean": float(folds.mean()),
            "fold_mae_std": float(folds.std()), "n_folds": len(folds),
            "seconds": round(float(seconds), 2)}


def ae_predictions(result: ScaleResult, head: str) -> np.ndarray:
    """Out-of-fold predictions (N, k) of a regression head of a trained scale."""
    pooled = pooled_outputs(result.outputs, np.maximum(result.folds.fold_of_row, 0))
    return np.asarray(pooled["heads"][head])


def design_matrices(result: ScaleResult) -> list[np.ndarray]:
    """Per CV fold, the (N, d) features the scale's fold model sees: numeric groups
    standardised with that model's own statistics, categorical groups one-hot."""
    spec, data, stats = result.spec, result.data, result.batch.stats
    out = []
    for f in range(result.folds.n_cv):
        blocks = []
        for g in spec.inputs:
            x = np.asarray(data.inputs[g.name])
            if g.kind == "categorical":
                blocks.append(np.eye(len(data.categories.groups[g.name]))[x])
            else:
                mean = np.asarray(stats[g.name]["mean"])[f]
                scale = np.asarray(stats[g.name]["scale"])[f]
                blocks.append((x - mean) / scale)
        out.append(np.concatenate(blocks, axis=1).astype(np.float64))
    return out


def sklearn_model(name: str, random_state: int = 0):
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    if name == "random forest":
        return RandomForestRegressor(n_estimators=100, random_state=random_state, n_jobs=1)
    if name == "ridge":
        return Ridge(alpha=1.0)
    if name == "mean":
        return DummyRegressor(strategy="mean")
    raise ValueError(name)


def sklearn_oof(name: str, features: list[np.ndarray], y: np.ndarray,
                fold_of_row: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions (N, k) of a scikit-learn model: fold f's model is fitted on the
    rows outside fold f (features[f]: that fold's standardised features)."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    pred = np.zeros_like(y)
    for f, x in enumerate(features):
        val = fold_of_row == f
        model = sklearn_model(name)
        target = y[~val] if y.shape[1] > 1 else y[~val, 0]
        model.fit(x[~val], target)
        pred[val] = np.asarray(model.predict(x[val])).reshape(int(val.sum()), -1)
    return pred


def _check_same_folds(reference: np.ndarray, other: np.ndarray, what: str) -> None:
    if not np.array_equal(reference, other):
        raise NestedAEError(f"internal: {what} was trained on other folds than the chain "
                            "(fold assignment differs)")


def _regression_heads(spec: ScaleSpec) -> list[HeadSpec]:
    return [h for h in spec.heads if h.kind == "regression"]


def _say(progress: Progress | None, line: str) -> None:
    if progress:
        progress(line)


def compare_supervised(cfg: Config, *, data_root: str | None = None,
                       splits: Sequence[str] = SPLITS, epochs: int | None = None,
                       progress: Progress | None = None,
                       frames: dict[str, pd.DataFrame] | None = None,
                       sklearn: Sequence[str] = SKLEARN_MODELS) -> Comparison:
    """NestedAE vs single autoencoders vs scikit-learn baselines on the chain's folds, for
    every regression head of every scale and every split kind."""
    cfg = with_epochs(cfg, epochs)
    rows, folds, fits = [], {}, {}
    for split in splits:
        scfg = split_config(cfg, split)
        _say(progress, f"== split {split}: NestedAE chain ==")
        fit = fit_config(scfg, data_root=data_root, progress=progress, frames=frames)
        fits[split] = fit
        for spec in scfg.scales:
            res = fit.scales[spec.name]
            fold_of_row = res.folds.fold_of_row
            key = (split, spec.name)
            folds[key] = {"NestedAE": fold_of_row}
            heads = _regression_heads(spec)
            for h in heads:
                rows.append(_score_row(f"{spec.name}.{h.name}", split, "NestedAE",
                                       res.data.targets[h.name], ae_predictions(res, h.name),
                                       fold_of_row, res.seconds))
            feature_source = res
            if spec.upstream and heads:
                for label, raw in (("single AE (raw)", True), ("single AE (own)", False)):
                    single = single_scale_config(scfg, spec.name, raw_upstream=raw)
                    groups = " + ".join(g.name for g in single.scales[0].inputs)
                    _say(progress, f"== split {split}: {label}: {groups} ==")
                    sfit = fit_config(single, data_root=data_root, progress=progress,
                                      frames=None if frames is None else
                                      {spec.name: frames[spec.name]})
                    sres = sfit.scales[spec.name]
                    _check_same_folds(fold_of_row, sres.folds.fold_of_row, label)
                    folds[key][label] = sres.folds.fold_of_row
                    for h in heads:
                        rows.append(_score_row(f"{spec.name}.{h.name}", split, label,
                                               sres.data.targets[h.name],
                                               ae_predictions(sres, h.name), fold_of_row,
                                               sres.seconds))
                    if raw:
                        feature_source = sres
            if not heads:
                continue
            features = design_matrices(feature_source)
            for name in sklearn:
                start = time.perf_counter()
                folds[key][name] = fold_of_row
                for h in heads:
                    y = res.data.targets[h.name]
                    pred = sklearn_oof(name, features, y, fold_of_row)
                    rows.append(_score_row(f"{spec.name}.{h.name}", split, name, y, pred,
                                           fold_of_row, time.perf_counter() - start))
        _say(progress, summary_markdown(pd.DataFrame(rows, columns=TABLE_COLUMNS)
                                        .query("split == @split")))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return Comparison(table, folds, fits, "supervised", cfg.source)


# ----------------------------------------------------------------------------------------------
# Reconstruction comparison over seeds (synthetic data)


@dataclass
class SeedBatch:
    """A scale trained for S seeds x F folds in one model batch (model index s*F + f)."""

    spec: ScaleSpec
    base_data: ScaleData      # the scale's rows, once (latent groups: seed 0's)
    base_folds: Folds         # the F folds of the scale
    seeds: np.ndarray         # (S,)
    state: object             # TrainState, leading axis S*F
    stats: dict               # leading axis S*F
    outputs: dict             # leaves (S*F, S*N or N, ...)
    stacked: bool             # rows stacked once per seed
    metrics: list             # per seed: scale_metrics document
    seconds: float

    @property
    def n_folds(self) -> int:
        return self.base_folds.n_models

    def seed_result(self, s: int) -> ScaleResult:
        """A ScaleResult view of seed s (its F models) that the nesting code can feed from."""
        idx = np.arange(s * self.n_folds, (s + 1) * self.n_folds)
        take = lambda a: jnp.asarray(a)[idx]  # noqa: E731
        state = jax.tree.map(take, self.state)
        stats = jax.tree.map(take, self.stats)
        batch = seed_model_batch(self.spec, self.base_folds.train, self.base_folds.val, stats,
                                 np.full(self.n_folds, self.seeds[s]),
                                 np.arange(self.n_folds))
        dims = scale_dims(self.spec, self.base_data)
        return ScaleResult(self.spec, dims, self.base_data, self.base_folds, batch, state, {},
                           {}, self.metrics[s], self.seconds)


def seed_model_batch(spec: ScaleSpec, train: np.ndarray, val: np.ndarray, stats: dict,
                     seeds: np.ndarray, fold_ids: np.ndarray) -> ModelBatch:
    """M models with their own row masks (M, N), statistics, initial-weight seeds and
    shuffling/dropout stream ids (the fold index), the config's hyper-parameters."""
    m = len(seeds)
    hp = jax.tree.map(lambda v: jnp.full((m,), v, jnp.float32), hyperparameters(spec))
    return ModelBatch(jnp.asarray(train, jnp.float32), jnp.asarray(val, jnp.float32),
                      jax.tree.map(jnp.asarray, stats), jnp.asarray(seeds, jnp.int32),
                      jnp.asarray(fold_ids, jnp.int32), hp)


def _single_member(spec: ScaleSpec) -> ScaleSpec:
    """The spec with one model per fold and seed (training.ensemble = 1, if the key exists)."""
    if getattr(spec.training, "ensemble", 1) != 1:
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, ensemble=1))
    return spec


def fit_seeds(cfg: Config, spec: ScaleSpec, data: ScaleData, seeds: np.ndarray,
              upstream: dict[str, "SeedBatch"], progress: Progress | None = None) -> SeedBatch:
    """Train ``spec`` for every seed and fold in one compiled batch.

    A scale with latent inputs gets, for seed s, the latents of the upstream scales' seed-s
    models (fed as ``cfg.chain`` says): its rows are stacked once per seed and model (s, f)
    trains, validates and is standardised on copy s only."""
    start = time.perf_counter()
    spec = _single_member(spec)
    n, n_seeds = data.n_rows, len(seeds)
    base = make_folds(spec, data, input_group_columns(spec))
    n_folds = base.n_models
    latent_groups = [g for g in spec.inputs if g.kind == "latent"]
    stacked = bool(latent_groups) and n_seeds > 1
    if latent_groups:
        per_seed = []
        for s in range(n_seeds):
            results = {name: b.seed_result(s) for name, b in upstream.items()}
            per_seed.append({g.name: nesting.transfer_latent(cfg, results, g, data)
                             for g in latent_groups})
        data.inputs.update(per_seed[0])
    if stacked:
        tile = lambda a: np.concatenate([a] * n_seeds, axis=0)  # noqa: E731
        inputs = {k: tile(v) for k, v in data.inputs.items()}
        for g in latent_groups:
            inputs[g.name] = np.concatenate([p[g.name] for p in per_seed], axis=0)
        run_data = ScaleData(pd.concat([data.frame] * n_seeds, ignore_index=True), inputs,
                             {k: tile(v) for k, v in data.targets.items()}, data.categories,
                             data.source)
        train = np.zeros((n_seeds * n_folds, n_seeds * n), np.float32)
        val = np.zeros_like(train)
        block = np.zeros_like(train)
        for s in range(n_seeds):
            rows = slice(s * n, (s + 1) * n)
            models = slice(s * n_folds, (s + 1) * n_folds)
            train[models, rows], val[models, rows], block[models, rows] = \
                base.train, base.val, 1.0
    else:
        run_data = data
        train, val = np.tile(base.train, (n_seeds, 1)), np.tile(base.val, (n_seeds, 1))
        block = np.ones_like(train)
    stat_masks = train if spec.scaler == "train" else block
    stats = {g.name: fit_stats(run_data.inputs[g.name], stat_masks, name=g.name,
                               source=data.source)
             for g in spec.inputs if g.kind != "categorical"}
    # each model's shuffling/dropout stream is its fold index, as in a plain fit_config run
    batch = seed_model_batch(spec, train, val, stats, np.repeat(np.asarray(seeds), n_folds),
                             np.tile(np.arange(n_folds), n_seeds))
    dims = scale_dims(spec, run_data)
    model = scale_model(spec, dims)
    arrays = {"inputs": jax.tree.map(jnp.asarray, run_data.inputs),
              "targets": jax.tree.map(jnp.asarray, run_data.targets)}
    printer = progress_printer(f"{spec.name} x{n_seeds} seeds", spec.training.epochs, progress)
    state, _ = train_models(model, arrays, batch, on_chunk=printer)
    params = state.best_params if spec.training.select == "best" else state.params
    outputs = predict_models(model, params, batch.stats, arrays["inputs"])
    metrics = []
    for s in range(n_seeds):
        models = np.arange(s * n_folds, (s + 1) * n_folds)
        rows = np.arange(s * n, (s + 1) * n) if stacked else np.arange(n)
        out_s = jax.tree.map(lambda a: np.asarray(a)[models][:, rows], outputs)
        tgt_s = {k: np.asarray(v)[rows] for k, v in run_data.targets.items()}
        metrics.append(scale_metrics(spec, out_s, tgt_s, base.train, base.val,
                                     base.fold_of_row, n_folds))
    return SeedBatch(spec, data, base, np.asarray(seeds), state, batch.stats, outputs, stacked,
                     metrics, time.perf_counter() - start)


def single_autoencoder_config(cfg: Config) -> Config:
    """One scale on every raw numeric input of the chain (as named in the last scale's file),
    with the last scale's encoder and its own-descriptor reconstruction head's decoder."""
    last = cfg.scales[-1]
    cols = raw_columns(cfg, last.name)
    specs = _specs(cfg)
    numeric = []
    for name in [s.name for s in cfg.scales if s.name in cols]:
        maps = nesting.column_maps(specs, last.name)[name]
        numeric += [maps.get(c, c) for g in specs[name].inputs if g.kind == "numeric"
                    for c in g.columns]
    if any(g.kind == "categorical" for s in cfg.scales for g in s.inputs):
        raise ConfigError("the single-autoencoder comparison supports numeric inputs only")
    template = next((h for h in last.heads if h.kind == "reconstruction" and
                     last.group(h.input).kind == "numeric"), None)
    if template is None:
        raise ConfigError(f"scale '{last.name}' needs a reconstruction head of a numeric group")
    group = InputGroup(name="all_inputs", kind="numeric", columns=_unique(numeric))
    head = dataclasses.replace(template, name="all_inputs", input="all_inputs", reference=())
    enc: EncoderSpec = last.encoder
    spec = dataclasses.replace(last, name="single", inputs=(group,), heads=(head,), encoder=enc)
    return dataclasses.replace(cfg, scales=(spec,))


def compare_reconstruction(cfg: Config, *, data_root: str | None = None, seeds: int = 10,
                           epochs: int | None = None, progress: Progress | None = None,
                           frames: dict[str, pd.DataFrame] | None = None) -> Comparison:
    """NestedAE (every scale, mean of their reconstruction MAEs) vs one single autoencoder,
    reconstruction MAE in standardised units over ``seeds`` seeds (mean and std)."""
    cfg = with_epochs(cfg, epochs)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    config_dir = str(Path(cfg.source).parent) if cfg.source and cfg.source != "<config>" else None

    def load(spec: ScaleSpec) -> ScaleData:
        frame = (frames or {}).get(spec.name)
        path = resolve_data_path(spec.data, config_dir, data_root) if frame is None \
            else Path(f"<{spec.name} data>")
        return load_scale_data(spec, path, frame=frame)

    def sums(batch: SeedBatch, where: str, raw_only: bool = False) -> np.ndarray:
        """Per seed: (sum over reconstructed columns of their MAE, number of columns);
        raw_only: only the reconstructions of the scale's own numeric inputs (not latents)."""
        out = []
        for m in batch.metrics:
            total = width = 0.0
            for h in batch.spec.heads:
                if h.kind != "reconstruction" or \
                        (raw_only and batch.spec.group(h.input).kind != "numeric"):
                    continue
                w = batch.base_data.inputs[h.input].shape[1]
                total += metric_of(m, h.name, where) * w
                width += w
            out.append((total, width))
        return np.asarray(out)

    def per_seed(batch: SeedBatch, where: str) -> np.ndarray:
        t = sums(batch, where)
        return t[:, 0] / t[:, 1]

    def raw_columns_mae(where: str) -> np.ndarray:
        t = sum(sums(b, where, raw_only=True) for b in batches.values())
        return t[:, 0] / t[:, 1]

    seed_values = np.arange(seeds) + cfg.scales[0].training.seed
    label = Path(cfg.source).stem if cfg.source else "config"
    rows, folds, batches = [], {}, {}
    for spec in cfg.scales:
        _say(progress, f"== {label}: NestedAE scale '{spec.name}', {seeds} seeds ==")
        batches[spec.name] = fit_seeds(cfg, spec, load(spec), seed_values, dict(batches),
                                       progress)
        folds[(label, spec.name)] = {"NestedAE": batches[spec.name].base_folds.fold_of_row}
    single_cfg = single_autoencoder_config(cfg)
    sspec = single_cfg.scales[0]
    _say(progress, f"== {label}: single autoencoder ({len(sspec.inputs[0].columns)} inputs -> "
                   f"{sspec.encoder.latent_size}), {seeds} seeds ==")
    sdata_frame = (frames or {}).get(cfg.scales[-1].name)
    sdata = load_scale_data(sspec, resolve_data_path(sspec.data, config_dir, data_root)
                            if sdata_frame is None else Path("<single data>"), frame=sdata_frame)
    single = fit_seeds(single_cfg, sspec, sdata, seed_values, {}, progress)
    folds[(label, "single")] = {"single AE": single.base_folds.fold_of_row}

    val = {n: per_seed(b, "pooled_val") for n, b in batches.items()}
    train = {n: per_seed(b, "pooled_train_mean") for n, b in batches.items()}
    nested_val = np.mean(list(val.values()), axis=0)
    nested_train = np.mean(list(train.values()), axis=0)
    seconds = sum(b.seconds for b in batches.values())

    def row(model, v, t, sec):
        return {"data": label, "model": model, "seeds": seeds, "val_mae_mean": float(v.mean()),
                "val_mae_std": float(v.std()), "train_mae_mean": float(t.mean()),
                "train_mae_std": float(t.std()), "seconds": round(sec, 2)}

    rows.append(row("NestedAE (mean of scales)", nested_val, nested_train, seconds))
    rows.append(row("NestedAE (raw inputs only)", raw_columns_mae("pooled_val"),
                    raw_columns_mae("pooled_train_mean"), seconds))
    for n, b in batches.items():
        rows.append(row(f"NestedAE scale '{n}'", val[n], train[n], b.seconds))
    rows.append(row("single AE", per_seed(single, "pooled_val"),
                    per_seed(single, "pooled_train_mean"), single.seconds))
    table = pd.DataFrame(rows, columns=RECON_COLUMNS)
    fits = {"nested": batches, "single": single}
    return Comparison(table, folds, fits, "reconstruction", cfg.source)


def metric_of(metrics: dict, head: str, where: str) -> float:
    entry = metrics["heads"][head].get(where) or {}
    if "mae" not in entry:
        raise NestedAEError(f"head '{head}' has no {where} metrics (cv.kind none?)")
    return float(entry["mae"])


# ----------------------------------------------------------------------------------------------
# Entry points


def is_supervised(cfg: Config) -> bool:
    return any(h.kind == "regression" for s in cfg.scales for h in s.heads)


def compare(config: Config | str | Path, *, data_root: str | None = None,
            splits: Sequence[str] | None = None, epochs: int | None = None, seeds: int = 10,
            out: str | Path | None = None, progress: Progress | None = None,
            frames: dict[str, pd.DataFrame] | None = None) -> Comparison:
    """Run the comparison a config calls for (see the module docstring) and, with ``out``,
    write compare.md, compare.csv and folds.csv there. ``splits`` (supervised only; default
    all of SPLITS); ``seeds`` (reconstruction only)."""
    cfg = load_config(config) if isinstance(config, (str, Path)) else config
    if is_supervised(cfg):
        result = compare_supervised(cfg, data_root=data_root, splits=splits or SPLITS,
                                    epochs=epochs, progress=progress, frames=frames)
    else:
        if splits and tuple(splits) != ("random",):
            _say(progress, "note: a reconstruction comparison uses the config's own cv; "
                           "--cv is ignored")
        result = compare_reconstruction(cfg, data_root=data_root, seeds=seeds, epochs=epochs,
                                        progress=progress, frames=frames)
    if out is not None:
        write_comparison(result, out)
    return result


def folds_table(result: Comparison) -> pd.DataFrame:
    parts = []
    for (split, scale), models in result.folds.items():
        first = next(iter(models.values()))
        parts.append(pd.DataFrame({"split": split, "scale": scale, "row": np.arange(len(first)),
                                   "fold": first}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _fmt(v: float, digits: int = 3) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def summary_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (supervised or reconstruction layout)."""
    if "target" in table.columns:
        lines = ["| target | split | model | MAE | RMSE | R^2 | fold MAE mean +- std | s |",
                 "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in table.itertuples():
            lines.append(f"| {r.target} | {r.split} | {r.model} | {_fmt(r.mae)} | "
                         f"{_fmt(r.rmse)} | {_fmt(r.r2)} | {_fmt(r.fold_mae_mean)} +- "
                         f"{_fmt(r.fold_mae_std)} | {r.seconds:.1f} |")
    else:
        lines = ["| data | model | seeds | val recon MAE (mean +- std over seeds) | "
                 "train recon MAE | s |", "|---|---|---:|---:|---:|---:|"]
        for r in table.itertuples():
            lines.append(f"| {r.data} | {r.model} | {r.seeds} | {_fmt(r.val_mae_mean)} +- "
                         f"{_fmt(r.val_mae_std)} | {_fmt(r.train_mae_mean)} +- "
                         f"{_fmt(r.train_mae_std)} | {r.seconds:.1f} |")
    return "\n".join(lines)


def markdown_document(result: Comparison) -> str:
    head = [f"# Comparison: {result.source or 'config'}", ""]
    if result.kind == "supervised":
        head += ["Per-sample metrics pooled over the validation folds (every row scored once, "
                 "by the model that did not train on it); fold MAE: mean +- std (ddof 0) of "
                 "the per-fold validation MAE. All models of a split share the same folds. "
                 "random = KFold; group_rows = GroupKFold by identical input rows; "
                 "group_composition = GroupKFold by the first scale's inputs.", ""]
    else:
        head += ["Reconstruction MAE in standardised units, pooled over the validation "
                 "folds (val) and on the training rows (train), mean +- std over seeds. "
                 "NestedAE (mean of scales) = mean of the scales' reconstruction MAEs (the "
                 "paper's figure; a downstream scale's includes its reconstruction of the "
                 "upstream latents); NestedAE (raw inputs only) = MAE over the raw input "
                 "columns of every scale (what the single AE reconstructs).", ""]
    return "\n".join(head + [summary_markdown(result.table), ""])


def write_comparison(result: Comparison, out: str | Path) -> list[Path]:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NestedAEError(f"cannot create --out {out}: {err.strerror}") from None
    paths = [out / "compare.md", out / "compare.csv", out / "folds.csv"]
    io.atomic_write_text(paths[0], markdown_document(result))
    io.atomic_write_csv(paths[1], result.table)
    io.atomic_write_csv(paths[2], folds_table(result))
    return paths


def cmd_compare(args) -> int:
    progress = None if getattr(args, "quiet", False) else \
        (lambda line: print(line, file=sys.stderr, flush=True))
    splits = None
    if args.cv:
        splits = tuple(s.strip() for s in args.cv.split(",") if s.strip())
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ConfigError(f"--cv: unknown split '{bad[0]}'; use a comma list of "
                              f"{', '.join(SPLITS)}")
    tables = []
    start = time.perf_counter()
    configs = args.config if isinstance(args.config, list) else [args.config]
    for i, path in enumerate(configs):
        out = Path(args.out) if len(configs) == 1 else Path(args.out) / Path(path).stem
        result = compare(path, data_root=args.data_root, splits=splits, epochs=args.epochs,
                         seeds=args.seeds, out=out, progress=progress)
        print(markdown_document(result))
        tables.append(out)
    print(f"wall time {time.perf_counter() - start:.1f} s; tables in "
          + ", ".join(str(t) for t in tables))
    return 0


def add_cli(subparsers) -> None:
    """Register ``nested-ae compare`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "compare", help="NestedAE vs single autoencoders and scikit-learn baselines on the "
        "same folds (random and grouped CV); or NestedAE vs one autoencoder over seeds for a "
        "reconstruction-only config")
    p.add_argument("config", nargs="+", help="TOML config file(s)")
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA, "
                   "else the config's folder)")
    p.add_argument("--out", default="runs/compare",
                   help="folder for compare.md, compare.csv, folds.csv (default runs/compare; "
                   "one subfolder per config when several are given)")
    p.add_argument("--cv", help="comma list of split kinds: " + ", ".join(SPLITS) +
                   " (default: all; supervised configs only)")
    p.add_argument("--epochs", type=int, help="override every scale's training epochs "
                   "(quick runs)")
    p.add_argument("--seeds", type=int, default=10,
                   help="seeds of a reconstruction comparison (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_compare)

