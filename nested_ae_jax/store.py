"""The run store: preparing a run directory, checkpointing trained scales, loading a run back.

``nested-ae train`` writes a run directory (tables and figures come from ``reports``);
``chain.load`` reads it back (every command goes through it), ``--resume`` through
:func:`resume_states`.

Layout::

    RUN/config.toml            resolved config (every default filled in, data paths absolute,
                               module files as RUN/modules/... copies, relative to RUN)
    RUN/modules/NAME-HASH.py   a copy of every user module file the config names
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
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint, io
from .config import (Config, config_to_dict, map_modules, parse_config, resolve_data_path,
                     split_module_reference)
from .data import Categories
from .errors import RunDirError
from .history import History
from .model import ScaleDims, ScaleModel, scale_model
from .trained import TrainedScale
from .training import (ModelBatch, TrainState, history_epochs, hyperparameters, init_state,
                       scale_task, selected_params)

if TYPE_CHECKING:
    from .chain import TrainedChain

RUN_MARKERS = ("metrics.json", "config.toml", "checkpoints")


def prepare_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create ``out``; refuse one that already holds a run unless overwrite/resume."""
    out = Path(out).expanduser().resolve()
    try:
        out.exists()
    except OSError as err:  # e.g. a name too long (pathlib only absorbs "not found")
        raise _cannot_write(out, err) from None
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory; choose another --out")
    holds_run = out.is_dir() and any((out / m).exists() for m in RUN_MARKERS)
    if holds_run and not (overwrite or resume):
        raise RunDirError(f"{out} already holds a run; pass --overwrite to replace it or "
                          "--resume to continue it, or choose another --out")
    if holds_run and overwrite and not resume:
        for m in RUN_MARKERS + ("figures", "oof_predictions.csv", "history.csv", "modules"):
            p = out / m
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise _cannot_write(out, err) from None
    return out


def _cannot_write(out: Path, err: OSError) -> RunDirError:
    return RunDirError(f"cannot write to --out {out}: {err.strerror}; choose a writable --out")


def resolved_config(cfg: Config, data_root: str | None, run_dir: Path | None = None) -> Config:
    """The config with every data path made absolute and shipped data sets kept as
    ``dataset:NAME`` (so the run directory stands alone, on any machine); with ``run_dir``,
    every user module file copied to RUN/modules/ and referred to there."""
    config_dir = str(Path(cfg.source).parent) if cfg.source and cfg.source != "<config>" else None
    scales = tuple(s if s.data.startswith("<") else dataclasses.replace(
        s, data=str(resolve_data_path(s.data, config_dir, data_root))) for s in cfg.scales)
    if run_dir is not None:
        scales = tuple(map_modules(s, lambda ref, _: copy_module(ref, run_dir)) for s in scales)
    return dataclasses.replace(cfg, scales=scales)


def copy_module(ref: str, run_dir: Path) -> str:
    """A file reference ``/abs/name.py:factory`` -> the same factory in a copy of the file,
    RUN/modules/name-HASH.py (HASH: of its content, so a changed file is a different module:
    --resume then refuses it as a different config). Package references stay as they are."""
    path, factory = split_module_reference(ref, "module")
    if not path.endswith(".py"):
        return ref
    source = Path(path)
    data = source.read_bytes()
    modules = Path(run_dir) / "modules"
    if source.parent.resolve() == modules.resolve():
        return ref  # already the run's copy
    copy = modules / f"{source.stem}-{hashlib.sha256(data).hexdigest()[:10]}.py"
    if not copy.exists() or copy.read_bytes() != data:
        modules.mkdir(parents=True, exist_ok=True)
        io.atomic_write_bytes(copy, data)
    return f"{copy}:{factory}"


def run_document(cfg: Config, run_dir: Path) -> dict:
    """``config_to_dict(cfg)`` as a run directory stores it: module files under RUN written
    relative to RUN (read back with ``parse_config(..., base=RUN)``), so the directory can
    move."""
    def relative(ref: str, _key: str) -> str:
        path, factory = split_module_reference(ref, "module")
        p = Path(path)
        inside = path.endswith(".py") and p.is_absolute() and p.is_relative_to(run_dir)
        return f"{p.relative_to(run_dir).as_posix()}:{factory}" if inside else ref
    return config_to_dict(dataclasses.replace(
        cfg, scales=tuple(map_modules(s, relative) for s in cfg.scales)))


# ----------------------------------------------------------------------------------------------
# Checkpoints of one scale


def scale_record(cfg: Config, trained: TrainedScale, epochs_done: int, run_dir: Path) -> dict:
    """The JSON part of a scale's checkpoint: config, widths, categories, folds, feeders."""
    dims = trained.model.dims
    return {"scale": trained.spec.name, "config": run_document(cfg, run_dir),
            "dims": {"inputs": [list(x) for x in dims.inputs],
                     "heads": [list(x) for x in dims.heads]},
            "categories": trained.categories.to_json(),
            "fold_of_row": np.asarray(trained.fold_of_row).tolist(),
            "n_cv": trained.n_cv, "has_full": trained.has_full,
            "feeders": {k: np.asarray(v).tolist() for k, v in trained.feeders.items()},
            "epochs_done": epochs_done}


def checkpoint_arrays(state: TrainState, stats: dict, history: dict) -> dict:
    """The pytree a scale's checkpoint holds; ``history`` as :meth:`History.flat` lays it
    out (the on-disk layout of every run so far)."""
    return {"state": state, "stats": stats, "history": history}


def save_scale(run_dir: Path, cfg: Config, trained: TrainedScale, state: TrainState,
               history: History) -> None:
    """Checkpoint a scale's whole model batch (training state, scalers, history) and its
    record, as step = epochs done."""
    epochs = int(np.asarray(state.epoch).max())
    checkpoint.save(run_dir / "checkpoints" / trained.spec.name, epochs,
                    checkpoint_arrays(state, trained.stats, history.flat()),
                    scale_record(cfg, trained, epochs, run_dir))


def periodic_saver(run_dir: Path, cfg: Config):
    """A fit_config on_chunk callback: checkpoint every training.checkpoint_every epochs."""
    def on_chunk(trained: TrainedScale, state: TrainState, history: History, done: int
                 ) -> None:
        training = trained.spec.training
        every = training.checkpoint_every
        if every and done % every < training.chunk_epochs and done < training.epochs:
            save_scale(run_dir, cfg, trained, state, history)
    return on_chunk


def resume_states(run_dir: Path, cfg: Config) -> dict:
    """{SCALE: (state, history)} of the newest checkpoint of every scale that has one, after
    checking it was written by the same config."""
    out = {}
    for spec in cfg.scales:
        directory = run_dir / "checkpoints" / spec.name
        if checkpoint.latest_step(directory) is None:
            continue
        loaded = load_scale(run_dir, spec.name)
        if config_to_dict(loaded.config) != config_to_dict(cfg):
            raise RunDirError(f"--resume: {directory} was written by a different config; use "
                              "--overwrite to start again")
        out[spec.name] = (loaded.state, loaded.history)
    return out


def state_template(model: ScaleModel, n_models: int, epochs_done: int) -> dict:
    """Shapes and dtypes of a scale's checkpoint arrays (to restore against)."""
    hp = jax.tree.map(lambda v: jnp.full((n_models,), v, jnp.float32),
                      hyperparameters(model.spec))
    dummy = ModelBatch(None, None, None, jnp.zeros(n_models, jnp.int32), None, hp)
    state = jax.eval_shape(lambda: init_state(scale_task(model), dummy))
    stats = {name: {"mean": jax.ShapeDtypeStruct((n_models, w), jnp.float32),
                    "scale": jax.ShapeDtypeStruct((n_models, w), jnp.float32)}
             for name, w in model.dims.inputs if model.spec.group(name).kind != "categorical"}
    keys = [f"{split}/{h}" for split in ("train", "val") for h in
            [*(h.name for h in model.spec.heads), "total"]]
    training = model.spec.training
    n_eval = len(history_epochs(epochs_done, training.chunk_epochs, training.eval_every))
    history = {k: jax.ShapeDtypeStruct((n_models, n_eval), jnp.float32) for k in keys}
    history["epoch"] = jax.ShapeDtypeStruct((n_models, n_eval), jnp.int32)
    return checkpoint_arrays(state, stats, history)


@dataclass
class LoadedScale:
    """A scale read back from a run directory: the config that wrote it, the trained scale,
    and its training state and per-epoch history (leading model axis)."""

    config: Config
    trained: TrainedScale
    state: TrainState
    history: History


def load_scale(run_dir: Path, name: str, step: int | None = None) -> LoadedScale:
    """Restore scale ``name``'s checkpoint (default: the newest step)."""
    directory = run_dir / "checkpoints" / name
    step, record = checkpoint.read_record(directory, step)
    cfg = parse_config(record["config"], f"{directory}/{step}", base=run_dir)
    spec = cfg.scale(name)
    dims = ScaleDims(tuple(map(tuple, record["dims"]["inputs"])),
                     tuple(map(tuple, record["dims"]["heads"])))
    model = scale_model(spec, dims)
    n_models = (record["n_cv"] + int(record["has_full"])) * spec.training.ensemble
    template = state_template(model, n_models, record["epochs_done"])
    arrays = checkpoint.restore(directory, template, step)
    trained = TrainedScale(model, Categories.from_json(record["categories"]),
                           selected_params(spec, arrays["state"]), arrays["stats"],
                           np.asarray(record["fold_of_row"]), record["n_cv"],
                           record["has_full"],
                           {k: np.asarray(v, np.int64) for k, v in record["feeders"].items()})
    return LoadedScale(cfg, trained, arrays["state"], History.from_flat(arrays["history"]))


def write_run(fit: "TrainedChain", run_dir: Path, data_root: str | None = None,
              checkpoints: bool = True) -> None:
    """Write every file of a run directory (``prepare_out_dir`` first): the resolved config,
    checkpoints, then the reports (tables, figures) and metrics.json last (its presence marks
    a finished run)."""
    from . import reports

    cfg = resolved_config(fit.config, data_root, run_dir)
    io.atomic_write_text(run_dir / "config.toml", io.dumps_toml(run_document(cfg, run_dir)))
    if checkpoints:
        for r in fit.results.values():
            save_scale(run_dir, cfg, r.trained, r.state, r.history)
        if fit.finetuned:  # leading fold axis
            checkpoint.save(run_dir / "checkpoints" / "_finetuned", cfg.chain.finetune_epochs,
                            fit.finetuned.params, {"config": run_document(cfg, run_dir)})
    reports.write_reports(fit, run_dir)
