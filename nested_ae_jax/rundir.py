"""Run directories: what ``nested-ae train`` writes and what ``predict`` reads back.

Layout::

    RUN/config.toml            resolved config (every default filled in, data paths absolute)
    RUN/metrics.json           metrics["scales"][S]["heads"][H]["pooled_val"], ...["folds"][i]
    RUN/oof_predictions.csv    one row per data row and scale: fold, targets, out-of-fold
                               predictions, latents
    RUN/history.csv            per scale, fold and epoch: train/val loss per head
    RUN/figures/*.png          parity plot per regression head, learning curves per scale
    RUN/checkpoints/S/STEP/    orbax: parameters (last and best), optimiser state, scalers,
                               history; JSON record: config, widths, categories, folds

Every file is written to a temporary name and renamed, so a killed run never leaves a
half-written file that reads as valid.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import checkpoint, io
from .config import Config, config_to_dict, parse_config, resolve_data_path
from .data import Categories
from .errors import RunDirError
from .model import ScaleDims, ScaleModel, scale_model
from .runner import FitResult, ScaleResult
from .training import ModelBatch, TrainState, hyperparameters, init_state, selected_params

RUN_MARKERS = ("metrics.json", "config.toml", "checkpoints")


def prepare_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create ``out``; refuse one that already holds a run unless overwrite/resume."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory; choose another --out")
    holds_run = out.is_dir() and any((out / m).exists() for m in RUN_MARKERS)
    if holds_run and not (overwrite or resume):
        raise RunDirError(f"{out} already holds a run; pass --overwrite to replace it or "
                          "--resume to continue it, or choose another --out")
    if holds_run and overwrite and not resume:
        for m in RUN_MARKERS + ("figures", "oof_predictions.csv", "history.csv"):
            p = out / m
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write to --out {out}: {err.strerror}; choose a writable "
                          "--out") from None
    return out


def resolved_config(cfg: Config, data_root: str | None) -> Config:
    """The config with every data path made absolute and shipped data sets kept as
    ``dataset:NAME`` (so the run directory stands alone, on any machine)."""
    config_dir = str(Path(cfg.source).parent) if cfg.source and cfg.source != "<config>" else None
    scales = tuple(s if s.data.startswith("<") else dataclasses.replace(
        s, data=str(resolve_data_path(s.data, config_dir, data_root))) for s in cfg.scales)
    return dataclasses.replace(cfg, scales=scales)


# ----------------------------------------------------------------------------------------------
# Checkpoints of one scale


def scale_record(cfg: Config, spec_name: str, dims: ScaleDims, categories: Categories,
                 fold_of_row: np.ndarray, n_cv: int, has_full: bool, epochs_done: int) -> dict:
    return {"scale": spec_name, "config": config_to_dict(cfg),
            "dims": {"inputs": [list(x) for x in dims.inputs],
                     "heads": [list(x) for x in dims.heads]},
            "categories": categories.to_json(), "fold_of_row": fold_of_row.tolist(),
            "n_cv": n_cv, "has_full": has_full, "epochs_done": epochs_done}


def checkpoint_arrays(state: TrainState, stats: dict, history: dict) -> dict:
    return {"state": state, "stats": stats, "history": history}


def save_scale(run_dir: Path, cfg: Config, result: ScaleResult,
               state: TrainState | None = None, history: dict | None = None) -> None:
    """Checkpoint a scale's whole model batch (``state``/``history``: mid-training values
    instead of the result's final ones)."""
    state = result.state if state is None else state
    history = result.history if history is None else history
    epochs = int(np.asarray(state.epoch).max())
    record = scale_record(cfg, result.spec.name, result.dims, result.data.categories,
                          result.folds.fold_of_row, result.folds.n_cv, result.folds.has_full,
                          epochs)
    checkpoint.save(run_dir / "checkpoints" / result.spec.name, epochs,
                    checkpoint_arrays(state, result.batch.stats, history), record)


def periodic_saver(run_dir: Path, cfg: Config):
    """A fit_config on_chunk callback: checkpoint every training.checkpoint_every epochs."""
    def on_chunk(result: ScaleResult, state: TrainState, history: dict, done: int) -> None:
        every = result.spec.training.checkpoint_every
        if every and done % every < result.spec.training.chunk_epochs \
                and done < result.spec.training.epochs:
            save_scale(run_dir, cfg, result, state, history)
    return on_chunk


def resume_states(run_dir: Path, cfg: Config) -> dict:
    """{SCALE: (state, history)} of the newest checkpoint of every scale that has one, after
    checking it was written by the same config."""
    out = {}
    for spec in cfg.scales:
        directory = run_dir / "checkpoints" / spec.name
        if checkpoint.latest_step(directory) is None:
            continue
        ck_cfg, loaded = load_scale(run_dir, spec.name)
        if config_to_dict(ck_cfg) != config_to_dict(cfg):
            raise RunDirError(f"--resume: {directory} was written by a different config; use "
                              "--overwrite to start again")
        out[spec.name] = (loaded.state, loaded.history)
    return out


def state_template(model: ScaleModel, n_models: int, epochs_done: int) -> dict:
    """Shapes and dtypes of a scale's checkpoint arrays (to restore against)."""
    hp = jax.tree.map(lambda v: jnp.full((n_models,), v, jnp.float32),
                      hyperparameters(model.spec))
    dummy = ModelBatch(None, None, None, jnp.zeros(n_models, jnp.int32), None, hp)
    state = jax.eval_shape(lambda: init_state(model, dummy))
    stats = {name: {"mean": jax.ShapeDtypeStruct((n_models, w), jnp.float32),
                    "scale": jax.ShapeDtypeStruct((n_models, w), jnp.float32)}
             for name, w in model.dims.inputs if model.spec.group(name).kind != "categorical"}
    keys = [f"{split}/{h}" for split in ("train", "val") for h in
            [*(h.name for h in model.spec.heads), "total"]]
    history = {k: jax.ShapeDtypeStruct((n_models, epochs_done), jnp.float32) for k in keys}
    return checkpoint_arrays(state, stats, history)


@dataclass
class LoadedScale:
    """A trained scale read back from a run directory (arrays have a leading model axis)."""

    model: ScaleModel
    categories: Categories
    state: TrainState
    stats: dict
    history: dict
    fold_of_row: np.ndarray
    n_cv: int
    has_full: bool

    @property
    def params(self):
        return selected_params(self.model.spec, self.state)


def load_scale(run_dir: Path, name: str, step: int | None = None) -> tuple[Config, LoadedScale]:
    directory = run_dir / "checkpoints" / name
    step, record = checkpoint.read_record(directory, step)
    cfg = parse_config(record["config"], f"{directory}/{step}")
    spec = cfg.scale(name)
    dims = ScaleDims(tuple(map(tuple, record["dims"]["inputs"])),
                     tuple(map(tuple, record["dims"]["heads"])))
    model = scale_model(spec, dims)
    n_models = (record["n_cv"] + int(record["has_full"])) * spec.training.ensemble
    template = state_template(model, n_models, record["epochs_done"])
    arrays = checkpoint.restore(directory, template, step)
    return cfg, LoadedScale(model, Categories.from_json(record["categories"]), arrays["state"],
                            arrays["stats"], arrays["history"],
                            np.asarray(record["fold_of_row"]), record["n_cv"],
                            record["has_full"])


@dataclass
class TrainedRun:
    """A run directory read back: its config and every trained scale."""

    path: Path
    config: Config
    scales: dict[str, LoadedScale]


def load_run(run_dir: str | Path) -> TrainedRun:
    """Read a run directory written by ``nested-ae train`` (checkpoints of every scale)."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir} (give the --out folder of "
                          "'nested-ae train')")
    cfg_path = run_dir / "config.toml"
    unfinished = (f"{run_dir} holds an unfinished run (killed or still training); continue it "
                  f"with 'nested-ae train CONFIG --out {run_dir} --resume'")
    if not cfg_path.exists():
        if (run_dir / "checkpoints").is_dir():
            raise RunDirError(unfinished)
        raise RunDirError(f"{run_dir} is not a run directory (no config.toml); train one with "
                          "'nested-ae train CONFIG --out DIR'")
    from .config import load_config
    cfg = load_config(cfg_path)
    scales = {}
    for spec in cfg.scales:
        step = checkpoint.latest_step(run_dir / "checkpoints" / spec.name)
        if step is not None and step < spec.training.epochs:  # a periodic checkpoint only
            raise RunDirError(unfinished)
        ck_cfg, scales[spec.name] = load_scale(run_dir, spec.name)
        if config_to_dict(ck_cfg) != config_to_dict(cfg):
            raise RunDirError(f"{run_dir}: checkpoint of scale '{spec.name}' was written by a "
                              "different config than config.toml; restore that config.toml "
                              "or re-train")
    return TrainedRun(run_dir, cfg, scales)


# ----------------------------------------------------------------------------------------------
# Tables and figures


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
        pred = np.asarray(outputs["heads"][h.name])
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
                    np.asarray(outputs["features"][h.input]).argmax(axis=-1)
                cols[f"{prefix}{h.name}.true"] = labels[codes]
    return cols


def oof_table(result: ScaleResult) -> pd.DataFrame:
    """Out-of-fold predictions of one scale: every row by the model that did not train on it
    (cv none: the single model, in-sample)."""
    from .evaluation import pooled_outputs
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
    latent = np.asarray(outputs["latent"])
    cols.update({f"latent_{j}": latent[:, j] for j in range(latent.shape[1])})
    return pd.DataFrame(cols)


def history_table(result: ScaleResult) -> pd.DataFrame:
    """Per model and epoch: fold (or "all" for the all-rows model), ensemble member."""
    n_models, n_epochs = next(iter(result.history.values())).shape
    per = result.folds.n_models
    labels = [str(f) for f in range(result.folds.n_cv)] + (["all"] if result.folds.has_full
                                                             else [])
    model = np.repeat(np.arange(n_models), n_epochs)
    frame = pd.DataFrame({"scale": result.spec.name,
                          "fold": np.array(labels)[model % per],
                          "member": model // per,
                          "epoch": np.tile(np.arange(1, n_epochs + 1), n_models)})
    for k, v in result.history.items():
        frame[k] = np.asarray(v).reshape(-1)
    return frame


def metrics_document(fit: FitResult) -> dict:
    return {
        "scales": {name: {**r.metrics, "n_rows": r.data.n_rows, "n_folds": r.folds.n_cv,
                          "best_epoch": np.asarray(r.state.best_epoch).tolist(),
                          "seconds": round(r.seconds, 3), "select": r.spec.training.select}
                   for name, r in fit.scales.items()},
        **({"finetuned": {"scales": fit.finetuned["metrics"],
                          "seconds": round(fit.finetuned["seconds"], 3)}}
           if fit.finetuned else {}),
        "wall_seconds": round(fit.seconds, 3),
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "backend": jax.default_backend()},
    }


def write_figures(run_dir: Path, fit: FitResult) -> list[Path]:
    from . import plots

    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    written = []
    for name, r in fit.scales.items():
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


def write_run(fit: FitResult, run_dir: Path, data_root: str | None = None,
              checkpoints: bool = True) -> None:
    """Write every file of a run directory (``prepare_out_dir`` first)."""
    cfg = resolved_config(fit.config, data_root)
    io.atomic_write_text(run_dir / "config.toml", io.dumps_toml(config_to_dict(cfg)))
    if checkpoints:
        for r in fit.scales.values():
            save_scale(run_dir, cfg, r)
        if fit.finetuned:  # {"params": {SCALE: ...}, "stats": {SCALE: ...}}, leading fold axis
            checkpoint.save(run_dir / "checkpoints" / "_finetuned", cfg.chain.finetune_epochs,
                            fit.finetuned["params"], {"config": config_to_dict(cfg)})
    io.atomic_write_csv(run_dir / "oof_predictions.csv",
                        pd.concat([oof_table(r) for r in fit.scales.values()], ignore_index=True))
    io.atomic_write_csv(run_dir / "history.csv",
                        pd.concat([history_table(r) for r in fit.scales.values()],
                                  ignore_index=True))
    write_figures(run_dir, fit)
    io.atomic_write_json(run_dir / "metrics.json", metrics_document(fit))
