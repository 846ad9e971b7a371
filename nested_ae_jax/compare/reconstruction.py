"""Reconstruction comparison over seeds (synthetic data): NestedAE vs one autoencoder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from ..config import Config, ScaleSpec
from ..data import ScaleData
from ..errors import ConfigError, NestedAEError
from ..evaluation import scale_metrics
from ..fitting import ModelsFit, Replica, fit_models, replica_layout
from ..runner import ChainPlan, plan_chain, scale_feeders, scale_folds
from ..splits import Folds
from ..trained import TrainedScale, feed_latents
from ..training import hyperparameters
from .comparison import RECON_COLUMNS, Comparison, Progress, say
from .configs import single_autoencoder_config, with_epochs


@dataclass
class SeedBatch:
    """A scale trained for S seeds x F folds in one model batch (model index s*F + f)."""

    spec: ScaleSpec
    data: ScaleData           # the scale's rows (latent groups: (S*F, N, L), each model's own)
    folds: Folds              # the F folds of the scale
    seeds: np.ndarray         # (S,)
    fit: ModelsFit
    feeders: dict             # {UPSTREAM: (F, K)} feeding models of each fold, within a seed
    metrics: list             # per seed: scale_metrics document

    @property
    def n_folds(self) -> int:
        return self.folds.n_models

    def seed_scale(self, s: int) -> TrainedScale:
        """Seed s's F models as a TrainedScale (what feeds the next scale's seed s)."""
        idx = np.arange(s * self.n_folds, (s + 1) * self.n_folds)
        pick = lambda t: jax.tree.map(lambda a: np.asarray(a)[idx], t)  # noqa: E731
        return TrainedScale(self.fit.model, self.data.categories, pick(self.fit.params),
                            pick(self.fit.batch.stats), self.folds.fold_of_row,
                            self.folds.n_cv, self.folds.has_full, self.feeders)


def fit_seeds(cfg: Config, spec: ScaleSpec, plan: ChainPlan, seeds: np.ndarray,
              upstream: dict[str, SeedBatch], progress: Progress | None = None) -> SeedBatch:
    """Train ``spec`` for every seed and fold in one compiled batch.

    plan: the chain's data and (matched) folds (``runner.plan_chain``). A scale with latent
    inputs gets, for seed s, the latents of the upstream scales' seed-s models, fed as in
    ``fit_config`` (``runner.scale_feeders``): per-model inputs, so model (s, f) trains,
    validates and is standardised on its own latents."""
    spec = spec if spec.training.ensemble == 1 else dataclasses.replace(
        spec, training=dataclasses.replace(spec.training, ensemble=1))
    data, folds = plan.data[spec.name], scale_folds(cfg, spec, plan)
    n_folds, specs = folds.n_models, cfg.specs
    feeders = scale_feeders(cfg, spec, {n: b.seed_scale(0) for n, b in upstream.items()},
                            n_folds)
    latents = {}
    for g in [g for g in spec.inputs if g.kind == "latent"]:
        per_seed = []
        for s in range(len(seeds)):
            z = feed_latents({n: b.seed_scale(s) for n, b in upstream.items()}, specs,
                             cfg.chain, g, data.frame, data.source, feeders[g.scale])
            per_seed.append(np.broadcast_to(z, (n_folds, *z.shape[-2:])))  # (F, N, L)
        latents[g.name] = np.concatenate(per_seed)  # (S*F, N, L): model s*F + f
    data = data.with_inputs(**latents)
    hp = hyperparameters(spec)
    fit = fit_models(spec, data, replica_layout(spec, folds, [Replica(int(s), hp) for s in seeds]),
                     progress=progress, label=f"{spec.name} x{len(seeds)} seeds")
    metrics = [scale_metrics(spec, jax.tree.map(lambda a: np.asarray(a)[s * n_folds:
                                                                         (s + 1) * n_folds],
                                                fit.outputs),
                             data.targets, folds.train, folds.val, folds.fold_of_row, n_folds)
               for s in range(len(seeds))]
    return SeedBatch(spec, data, folds, np.asarray(seeds), fit, feeders, metrics)


def compare_reconstruction(cfg: Config, *, data_root: str | None = None, seeds: int = 10,
                           epochs: int | None = None, progress: Progress | None = None,
                           frames: dict[str, pd.DataFrame] | None = None) -> Comparison:
    """NestedAE (every scale, mean of their reconstruction MAEs) vs one single autoencoder,
    reconstruction MAE in standardised units over ``seeds`` seeds (mean and std)."""
    cfg = with_epochs(cfg, epochs)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")

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
                w = batch.data.inputs[h.input].shape[-1]
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
    plan = plan_chain(cfg, data_root=data_root, frames=frames)
    for spec in cfg.scales:
        say(progress, f"== {label}: NestedAE scale '{spec.name}', {seeds} seeds ==")
        batches[spec.name] = fit_seeds(cfg, spec, plan, seed_values, dict(batches), progress)
        folds[(label, spec.name)] = {"NestedAE": batches[spec.name].folds.fold_of_row}
    single_cfg = single_autoencoder_config(cfg)
    sspec = single_cfg.scales[0]
    say(progress, f"== {label}: single autoencoder ({len(sspec.inputs[0].columns)} inputs -> "
                   f"{sspec.encoder.latent_size}), {seeds} seeds ==")
    last = cfg.scales[-1].name  # the single AE reads the last scale's rows, on its folds
    splan = plan_chain(single_cfg, data_root=data_root,
                       frames=None if frames is None else {sspec.name: frames[last]},
                       fold_ids={sspec.name: batches[last].folds.fold_of_row})
    single = fit_seeds(single_cfg, sspec, splan, seed_values, {}, progress)
    folds[(label, "single")] = {"single AE": single.folds.fold_of_row}

    val = {n: per_seed(b, "pooled_val") for n, b in batches.items()}
    train = {n: per_seed(b, "pooled_train_mean") for n, b in batches.items()}
    nested_val = np.mean(list(val.values()), axis=0)
    nested_train = np.mean(list(train.values()), axis=0)
    seconds = sum(b.fit.seconds for b in batches.values())

    def row(model, v, t, sec):
        return {"data": label, "model": model, "seeds": seeds, "val_mae_mean": float(v.mean()),
                "val_mae_std": float(v.std()), "train_mae_mean": float(t.mean()),
                "train_mae_std": float(t.std()), "seconds": round(sec, 2)}

    rows.append(row("NestedAE (mean of scales)", nested_val, nested_train, seconds))
    rows.append(row("NestedAE (raw inputs only)", raw_columns_mae("pooled_val"),
                    raw_columns_mae("pooled_train_mean"), seconds))
    for n, b in batches.items():
        rows.append(row(f"NestedAE scale '{n}'", val[n], train[n], b.fit.seconds))
    rows.append(row("single AE", per_seed(single, "pooled_val"),
                    per_seed(single, "pooled_train_mean"), single.fit.seconds))
    table = pd.DataFrame(rows, columns=RECON_COLUMNS)
    fits = {"nested": batches, "single": single}
    return Comparison(table, folds, fits, "reconstruction", cfg.source)


def metric_of(metrics: dict, head: str, where: str) -> float:
    entry = metrics["heads"][head].get(where) or {}
    if "mae" not in entry:
        raise NestedAEError(f"head '{head}' has no {where} metrics (cv.kind none?)")
    return float(entry["mae"])
