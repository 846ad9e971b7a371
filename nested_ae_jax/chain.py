"""TrainedChain: the one record of a trained chain, made by training and by loading.

``nested_ae_jax.fit(config)`` (``runner.fit``) trains one, ``nested_ae_jax.load(run_dir)``
reads one back from a run directory, ``chain.save(run_dir)`` writes the directory ``nested-ae
train`` writes. Every command (predict, design, explain, suggest, campaign, compare) and every
research script goes through it::

    chain = nested_ae_jax.load("runs/pce")
    table = chain.predict(frame)                    # the columns of `nested-ae predict`
    pce = chain.head_fn("device.pce")               # pure f(raw inputs) -> (N,)
    grads = jax.grad(lambda x: pce(x).sum())(chain.inputs(frame))

A prediction runs one copy of the chain per model of the target scale, each fed by the upstream
models that fed it in training (``trained.chain_copies``), and averages them. Stages: with
``chain.finetune_epochs > 0`` a run holds the sequentially trained models and the jointly
fine-tuned copies of the chain (one per fold of the last scale, ``finetune``); ``load`` gives
the fine-tuned ones by default (``stage="sequential"``: the others). In the fine-tuned stage
every scale's model axis is the copy axis (copy k: the chain of the last scale's fold k).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import jax
import numpy as np
import pandas as pd

from . import checkpoint, store
from .config import Config, ScaleSpec, config_to_dict, load_config
from .errors import NestedAEError, RunDirError, did_you_mean
from .nesting import Chain, ChainParams, ScaleEntry, chain_inputs, upstream_of
from .trained import (TrainedScale, apply_copies, chain_copies, finetune_start, refit_upstream,
                      summarise)

if TYPE_CHECKING:
    from .finetune import Finetuned
    from .runner import ScaleResult

STAGES = ("sequential", "finetuned")
FINETUNED_DIR = "_finetuned"


@dataclass(frozen=True)
class TrainedChain:
    """A trained chain, made by training (:func:`nested_ae_jax.fit`) and by loading
    (:func:`nested_ae_jax.load`); every command and research script goes through it::

        chain = nested_ae_jax.load("runs/pce")
        table = chain.predict(frame)                    # the columns of `nested-ae predict`
        pce = chain.head_fn("device.pce")               # pure f(raw inputs) -> (N,)
        grads = jax.grad(lambda x: pce(x).sum())(chain.inputs(frame))

    Stages: a run trained with ``chain.finetune_epochs > 0`` holds the sequentially trained
    models and the jointly fine-tuned copies of the chain (one per fold of the last scale);
    ``load`` gives the fine-tuned ones by default (``stage="sequential"``: the others).

    config: the config it was trained with; trained: {SCALE: TrainedScale} of ``stage``, in
    config order; path: its run directory (None until saved or when fresh from training);
    results: {SCALE: runner.ScaleResult} (data, folds, training state, metrics of the
    sequential stage; only fresh from training, empty when loaded); finetuned: the
    ``finetune.Finetuned`` of a fresh fit; leaks: metrics.json's "chain" (split mode, leaky
    validation rows); seconds: wall time of training.
    """

    config: Config
    trained: dict[str, TrainedScale]
    path: Path | None = None
    stage: str = "sequential"
    results: dict[str, "ScaleResult"] = field(default_factory=dict)
    finetuned: "Finetuned | None" = None
    leaks: dict | None = None
    seconds: float = 0.0
    loaded_metrics: dict | None = field(default=None, repr=False)

    # -- what it is -------------------------------------------------------------------------

    @property
    def scales(self) -> tuple[str, ...]:
        """The scale names, in config (dependency) order."""
        return tuple(self.trained)

    @property
    def specs(self) -> dict[str, ScaleSpec]:
        return self.config.specs

    @functools.cached_property
    def metrics(self) -> dict:
        """What metrics.json holds (computed from the training results when fresh)."""
        if self.loaded_metrics is not None:
            return self.loaded_metrics
        from .reports import metrics_document
        return metrics_document(self)

    def stage_line(self) -> str:
        """One line saying which parameters this chain uses (every command prints it)."""
        epochs = self.config.chain.finetune_epochs
        if self.stage == "finetuned":
            return (f"using the jointly fine-tuned chain ({epochs} epochs; one copy per fold "
                    f"of '{self.scales[-1]}')")
        tuned = epochs and len(self.config.scales) > 1
        extra = " (fine-tuned parameters not used: stage = sequential)" if tuned else ""
        return f"using the sequentially trained models{extra}"

    def target(self, scale: str | None = None) -> str:
        """``scale`` checked (default: the last scale)."""
        name = scale or self.scales[-1]
        if name not in self.trained:
            self.config.scale(name)  # a ConfigError naming the unknown scale
            raise NestedAEError(f"scale '{name}' is not part of this chain "
                                f"({', '.join(self.trained)})")
        return name

    def upto(self, scale: str | None = None) -> list[str]:
        """The scales ``scale`` stands on, in dependency order, ``scale`` last."""
        name = self.target(scale)
        return [*upstream_of(self.specs, name), name]

    # -- raw inputs and chain copies ---------------------------------------------------------

    def inputs(self, frame: pd.DataFrame, *, scale: str | None = None,
               source: str = "<data>") -> dict:
        """The raw inputs {SCALE: {GROUP: (N, ...) array}} of ``scale`` (default: the last)
        and every scale upstream of it, read from rows with ``scale``'s raw columns (the
        pytree the chain's functions take)."""
        names = self.upto(scale)
        return chain_inputs({n: self.specs[n] for n in names},
                            {n: self.trained[n].categories for n in names}, frame, names[-1],
                            source)

    def copies(self, scale: str | None = None, models: np.ndarray | None = None, *,
               fold: int | None = None, rows: dict | None = None) -> tuple[Chain, ChainParams]:
        """The chain up to ``scale``: one copy per target model (``models``, default
        ``TrainedScale.models(fold)``: every fold, or one), each fed as in training; leading
        copy axis on every entry. With chain.transfer_scaler = refit the upstream numeric
        scalers are re-fitted on raw inputs ``rows`` (default: the scale's training rows)."""
        name = self.target(scale)
        tgt = self.trained[name]
        chain, params = chain_copies(self.trained, name,
                                     tgt.models(fold) if models is None else models)
        if self.config.chain.transfer_scaler == "refit" and tgt.feeders:
            rows = self.training_inputs(name) if rows is None else rows
            params = refit_upstream(self.config.chain, chain, params, rows, list(tgt.feeders))
        return chain, params

    def frame(self, scale: str | None = None) -> pd.DataFrame:
        """The training rows of ``scale`` (default: the last): its data file's columns."""
        return self._training_rows(self.target(scale))[0]

    def _training_rows(self, scale: str) -> tuple[pd.DataFrame, str]:
        if scale in self.results:
            data = self.results[scale].data
            return data.frame, data.source
        from .data import read_table
        spec = self.specs[scale]
        return read_table(spec.data, spec.column_names), spec.data

    def training_inputs(self, scale: str) -> dict:
        """:meth:`inputs` of a scale's training rows."""
        frame, source = self._training_rows(scale)
        return self.inputs(frame, scale=scale, source=source)

    def predictions(self, frame: pd.DataFrame, *, scale: str | None = None,
                    fold: int | None = None, source: str = "<data>") -> dict:
        """{SCALE: (mean ScaleOutputs, {HEAD: std over the target's models})} of ``scale``
        (default: the last) and every scale upstream of it, on the rows of ``frame``
        (upstream scalers re-fitted on these rows with chain.transfer_scaler = refit)."""
        name = self.target(scale)
        inputs = self.inputs(frame, scale=name, source=source)
        chain, params = self.copies(name, fold=fold, rows=inputs)
        return _predict(chain, params, inputs)

    def predict(self, frame: pd.DataFrame, *, scale: str | None = None, fold: int | None = None,
                source: str = "<data>") -> pd.DataFrame:
        """The table ``nested-ae predict`` writes (without the input columns): ``SCALE.HEAD``,
        ``.std``, ``.prob``, and the latents with ``fold``; see ``predict.predict_frame``."""
        from .predict import predict_frame
        return predict_frame(self, frame, scale=scale, fold=fold, source=source)

    # -- pure functions ----------------------------------------------------------------------

    @functools.cached_property
    def _default(self) -> tuple[Chain, ChainParams]:
        return self.copies()

    @property
    def params(self) -> ChainParams:
        """{SCALE: ScaleEntry(params, stats)} of the copies the last scale's predictions
        average (leading copy axis); differentiate :meth:`apply` with respect to them."""
        return self._default[1]

    def apply(self, params: ChainParams, inputs: dict) -> dict:
        """Pure: {SCALE: (mean ScaleOutputs, {HEAD: std})} of the last scale and its
        upstream scales, from :attr:`params` and raw inputs (:meth:`inputs`)."""
        return summarise(self._default[0], apply_copies(self._default[0], params, inputs))

    def head_fn(self, head: str, *, fold: int | None = None) -> Callable[[dict], jax.Array]:
        """A pure function raw inputs (:meth:`inputs` of the head's scale) -> (N,) predicted
        ``head`` ("SCALE.HEAD", or "SCALE.HEAD[TARGET]" of a head with several targets): the
        mean over the models ``predict`` averages, or fold ``fold``'s. Traceable (jit, grad,
        vmap); scalers re-fitted on the scale's training rows under transfer_scaler = refit."""
        scale, name, column = self._head(head)
        chain, params = self.copies(scale, fold=fold)

        def f(inputs: dict) -> jax.Array:
            return apply_copies(chain, params, inputs)[scale].heads[name][:, :, column].mean(0)

        return f

    def _head(self, head: str) -> tuple[str, str, int]:
        scale, _, rest = head.partition(".")
        spec = self.specs.get(scale)
        names = [f"{s}.{h.name}" for s in self.scales for h in self.specs[s].heads
                 if h.kind == "regression"]
        base, _, col = rest.partition("[")
        h = next((h for h in spec.heads if h.name == base and h.kind == "regression"), None) \
            if spec else None
        if h is None:
            raise NestedAEError(f"head '{head}': not a regression head SCALE.HEAD of this "
                                f"chain{did_you_mean(head, names)}")
        col = col.rstrip("]")
        if len(h.target) > 1 and col not in h.target:
            raise NestedAEError(f"head '{head}' has several targets: name one, e.g. "
                                f"'{scale}.{base}[{h.target[0]}]'")
        return scale, base, h.target.index(col) if len(h.target) > 1 else 0

    # -- the run directory -------------------------------------------------------------------

    def save(self, run_dir: str | Path, *, overwrite: bool = False,
             data_root: str | None = None) -> Path:
        """Write the run directory ``nested-ae train`` writes (to a temporary directory, then
        renamed); refuse an existing ``run_dir`` unless ``overwrite``. A loaded chain is
        copied from its run directory. Returns the directory."""
        out = Path(run_dir).expanduser().resolve()
        if out.exists() and not overwrite:
            raise RunDirError(f"{out} already exists; pass overwrite=True to replace it or "
                              "choose another directory")
        if not self.results and self.path is None:
            raise RunDirError("this chain has neither training results nor a run directory "
                              "to save")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            if self.results:
                store.write_run(self, store.prepare_out_dir(tmp), data_root)
            else:
                shutil.copytree(self.path, tmp)
            if out.exists():
                out.rename(old)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return out


def _predict(chain: Chain, params: ChainParams, inputs: dict) -> dict:
    return jax.jit(lambda p, x: summarise(chain, apply_copies(chain, p, x)))(params, inputs)


# ----------------------------------------------------------------------------------------------
# The fine-tuned stage


def finetuned_scales(sequential: dict[str, TrainedScale], params: ChainParams
                     ) -> dict[str, TrainedScale]:
    """The TrainedScales of the fine-tuned stage: params {SCALE: ScaleEntry} with a leading
    copy axis C (``finetune.Finetuned.params``) become every scale's model axis; copy c of a
    scale is fed by copy c upstream. A scale keeps its fold ids when copy c started from its
    fold-c model (the last scale; upstream under matched splits), else has none (-1)."""
    last = list(sequential)[-1]
    start = finetune_start(sequential, last)
    out = {}
    for name, scale in sequential.items():
        if name not in params:
            continue
        n_copies = len(start[name])
        aligned = np.array_equal(start[name], np.arange(n_copies)) and scale.n_cv == n_copies
        fold_of_row = scale.fold_of_row if aligned else np.full_like(scale.fold_of_row, -1)
        out[name] = TrainedScale(scale.model, scale.categories, params[name].params,
                                 params[name].stats, fold_of_row, n_copies, False,
                                 {up: np.arange(n_copies)[:, None] for up in scale.feeders})
    return out


def finetuned_template(sequential: dict[str, TrainedScale]) -> ChainParams:
    """Shapes of the fine-tuned checkpoint's arrays (to restore against)."""
    start = finetune_start(sequential, list(sequential)[-1])
    return {n: sequential[n].pick(start[n]) for n in start}


# ----------------------------------------------------------------------------------------------
# Loading a run directory


def load(run_dir: str | Path, *, stage: str | None = None) -> TrainedChain:
    """Read a run directory written by ``nested-ae train`` (or :meth:`TrainedChain.save`).

    stage: "finetuned" (the default when the config has chain.finetune_epochs > 0) or
    "sequential" (the sequentially trained models)."""
    run_dir = Path(run_dir).expanduser().resolve()
    cfg = _run_config(run_dir)
    finetuned = cfg.chain.finetune_epochs > 0 and len(cfg.scales) > 1
    stage = stage or ("finetuned" if finetuned else "sequential")
    if stage not in STAGES:
        raise NestedAEError(f"stage '{stage}': use one of {', '.join(STAGES)}")
    if stage == "finetuned" and not finetuned:
        raise RunDirError(f"{run_dir}: the chain was not fine-tuned (chain.finetune_epochs = "
                          "0, or a single scale); use stage = sequential")
    unfinished = (f"{run_dir} holds an unfinished run (killed or still training); continue it "
                  f"with 'nested-ae train CONFIG --out {run_dir} --resume'")
    scales = {}
    for spec in cfg.scales:
        step = checkpoint.latest_step(run_dir / "checkpoints" / spec.name)
        if step is not None and step < spec.training.epochs:  # a periodic checkpoint only
            raise RunDirError(unfinished)
        loaded = store.load_scale(run_dir, spec.name)
        if config_to_dict(loaded.config) != config_to_dict(cfg):
            raise RunDirError(f"{run_dir}: checkpoint of scale '{spec.name}' was written by a "
                              "different config than config.toml; restore that config.toml "
                              "or re-train")
        scales[spec.name] = loaded.trained
    if stage == "finetuned":
        directory = run_dir / "checkpoints" / FINETUNED_DIR
        if checkpoint.latest_step(directory) is None:
            raise RunDirError(unfinished)
        params = checkpoint.restore(directory, finetuned_template(scales))
        scales = finetuned_scales(scales, {n: ScaleEntry(*e) for n, e in params.items()})
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return TrainedChain(cfg, scales, run_dir, stage, leaks=metrics.get("chain") or None,
                        seconds=float(metrics.get("wall_seconds", 0.0)),
                        loaded_metrics=metrics)


def _run_config(run_dir: Path) -> Config:
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir} (give the --out folder of "
                          "'nested-ae train')")
    cfg_path = run_dir / "config.toml"
    if not cfg_path.exists():
        if (run_dir / "checkpoints").is_dir():
            raise RunDirError(f"{run_dir} holds an unfinished run (killed or still training); "
                              f"continue it with 'nested-ae train CONFIG --out {run_dir} "
                              "--resume'")
        raise RunDirError(f"{run_dir} is not a run directory (no config.toml); train one with "
                          "'nested-ae train CONFIG --out DIR'")
    return load_config(cfg_path)


__all__ = ["STAGES", "TrainedChain", "finetuned_scales", "load"]
