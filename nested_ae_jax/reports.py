"""Reports of a trained config: out-of-fold and history tables, figures, metrics.json.

Written into a run directory by ``store.write_run``; every file goes through ``io``'s atomic
writes.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np
import pandas as pd

from . import io
from .data import Categories
from .evaluation import pooled_outputs
if TYPE_CHECKING:  # the trainer's results (reports are its output; predict uses the helpers)
    from .chain import TrainedChain
    from .runner import ScaleResult




def regression_columns(head) -> list[str]:
    """Column names of a regression head's outputs: HEAD, or HEAD[target] for each of
    several targets."""
    return [head.name] if len(head.target) == 1 else [f"{head.name}[{t}]" for t in head.target]


def head_columns(spec, outputs: dict, targets: dict | None, categories: Categories,
                 prefix: str = "") -> dict[str, np.ndarray]:
    """Columns for regression and categorical heads of one set of outputs (no model axis):
    ``{prefix}HEAD`` (prediction; class label for categorical) and, with targets,
    ``{prefix}HEAD.true``. Multi-column regression heads get ``HEAD[j]``."""
    cols: dict[str, np.ndarray] = {}
    for h in spec.heads:
        pred = np.asarray(outputs.heads[h.name])
        if h.kind == "regression":
            for j, n in enumerate(regression_columns(h)):
                cols[f"{prefix}{n}"] = pred[:, j]
                if targets is not None:
                    cols[f"{prefix}{n}.true"] = np.asarray(targets[h.name])[:, j]
        elif h.kind == "categorical":
            labels = np.array(categories.groups[h.input] if h.input else categories.heads[h.name])
            cols[f"{prefix}{h.name}"] = labels[pred.argmax(axis=-1)]
            if targets is not None:
                codes = np.asarray(targets[h.name]) if not h.input else \
                    np.asarray(outputs.features[h.input]).argmax(axis=-1)
                cols[f"{prefix}{h.name}.true"] = labels[codes]
    return cols


def oof_table(result: ScaleResult) -> pd.DataFrame:
    """Out-of-fold predictions of one scale: every row by the model that did not train on it
    (cv none: the single model, in-sample)."""
    model_of_row = np.where(result.folds.fold_of_row >= 0, result.folds.fold_of_row, 0)
    outputs = pooled_outputs(result.outputs, model_of_row)
    cols = {"scale": result.spec.name, "row": np.arange(result.data.n_rows),
            "fold": result.folds.fold_of_row}
    cols.update(head_columns(result.spec, outputs, result.data.targets, result.data.categories))
    if result.outputs_std is not None:  # spread over ensemble members
        std = pooled_outputs(result.outputs_std, model_of_row)
        for h in result.spec.heads:
            if h.kind == "regression":
                for j, name in enumerate(regression_columns(h)):
                    cols[f"{name}.std"] = np.asarray(std[h.name])[:, j]
    latent = np.asarray(outputs.latent)
    cols.update({f"latent_{j}": latent[:, j] for j in range(latent.shape[1])})
    return pd.DataFrame(cols)


def history_table(result: ScaleResult) -> pd.DataFrame:
    """Per model and evaluated epoch (training.eval_every): fold (or "all" for the all-rows
    model), ensemble member, losses."""
    n_models, n_epochs = result.history.n_models, result.history.n_epochs
    per = result.folds.n_models
    labels = [str(f) for f in range(result.folds.n_cv)] + (["all"] if result.folds.has_full
                                                             else [])
    model = np.repeat(np.arange(n_models), n_epochs)
    frame = pd.DataFrame({"scale": result.spec.name,
                          "fold": np.array(labels)[model % per],
                          "member": model // per,
                          "epoch": np.asarray(result.history.epoch).reshape(-1)})
    for k, v in result.history.flat().items():
        if k != "epoch":
            frame[k] = np.asarray(v).reshape(-1)
    return frame


def metrics_document(fit: TrainedChain) -> dict:
    return {
        "scales": {name: {**r.metrics, "n_rows": r.data.n_rows, "n_folds": r.folds.n_cv,
                          "best_epoch": np.asarray(r.state.best_epoch).tolist(),
                          "seconds": round(r.seconds, 3), "select": r.spec.training.select}
                   for name, r in fit.results.items()},
        **({"finetuned": {"scales": fit.finetuned.metrics,
                          "seconds": round(fit.finetuned.seconds, 3)}}
           if fit.finetuned else {}),
        **({"chain": fit.leaks} if fit.leaks else {}),
        "wall_seconds": round(fit.seconds, 3),
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "backend": jax.default_backend()},
    }


def write_figures(run_dir: Path, fit: TrainedChain) -> list[Path]:
    from . import plots

    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    written = []
    for name, r in fit.results.items():
        oof = oof_table(r)
        for h in r.spec.heads:
            if h.kind != "regression":
                continue
            for col in regression_columns(h):
                fig = plots.parity_figure(oof[f"{col}.true"].to_numpy(), oof[col].to_numpy(),
                                          folds=oof["fold"].to_numpy()
                                          if r.spec.cv.kind != "none" else None,
                                          title=f"{name}.{col} ("
                                          + ("out-of-fold)" if r.spec.cv.kind != "none"
                                             else "in-sample: cv none)"))
                path = fig_dir / f"parity_{name}_{col}.png"
                io.atomic_savefig(path, fig)
                written.append(path)
        hist = history_table(r)
        hist = hist[hist["member"] == 0].drop(columns=["scale", "member"])  # one curve per fold
        path = fig_dir / f"learning_curves_{name}.png"
        io.atomic_savefig(path, plots.learning_curves_figure(hist, title=f"scale {name}"))
        written.append(path)
    return written


def write_reports(fit: TrainedChain, run_dir: Path) -> None:
    """oof_predictions.csv, history.csv, figures/ and, last, metrics.json."""
    io.atomic_write_csv(run_dir / "oof_predictions.csv",
                        pd.concat([oof_table(r) for r in fit.results.values()], ignore_index=True))
    io.atomic_write_csv(run_dir / "history.csv",
                        pd.concat([history_table(r) for r in fit.results.values()],
                                  ignore_index=True))
    write_figures(run_dir, fit)
    io.atomic_write_json(run_dir / "metrics.json", metrics_document(fit))
