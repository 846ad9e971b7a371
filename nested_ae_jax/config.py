"""Configuration: a TOML file parsed once into frozen dataclasses, validated with clear errors.

A config holds one or more *scales* (``[scales.NAME]`` tables, in file order). Each scale has a
data file, input groups, an encoder, heads, training settings, cross-validation settings and a
scaler policy. Every key is declared once below, with its type, default and meaning in the
field's ``doc`` metadata; the key reference in docs/configuration.md is generated from the same declarations
(``python -m nested_ae_jax.config``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import datasets
from .errors import ConfigError, did_you_mean

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softplus", "gelu", "elu", "leaky_relu")
LOSSES = ("mae", "mse", "huber", "cross_entropy")
INITS = ("xavier_normal", "xavier_uniform")
INPUT_KINDS = ("numeric", "categorical", "latent")
HEAD_KINDS = ("regression", "reconstruction", "categorical")
CV_KINDS = ("kfold", "group", "stratified", "none")
SCALER_FITS = ("train", "all")
FEEDS = ("fold", "all_rows", "fold_mean")
SPLIT_MODES = ("matched", "independent")
TRANSFER_SCALERS = ("upstream", "refit")


def _key(doc: str, default: Any = dataclasses.MISSING, **checks: Any) -> Any:
    """A config key: its default, a one-line meaning and checks (``choices``, ``min``, ``gt``)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata={"doc": doc, **checks})


MODULE_DOC = ("a Flax module of your own instead of the built-in dense network: "
              "'file.py:factory' (relative to the config's folder) or 'package.module:factory'; "
              "factory(out_features=WIDTH, **options) returns a flax.linen.Module, or a factory "
              "taking in_features and rngs a flax.nnx.Module (docs/custom-modules.md); the "
              "built-in network's keys are then not allowed")
OPTIONS_DOC = "module: keyword arguments of the factory (numbers, strings, booleans, lists)"
# keys of the built-in network, not allowed beside `module`
BUILTIN_KEYS = ("hidden", "activation", "latent_activation", "output_activation", "dropout",
                "init", "init_gain")


@dataclass(frozen=True)
class InputGroup:
    """A named group of input columns fed to the scale's encoder."""

    name: str
    kind: str = _key("numeric (standardised floats), categorical (one-hot of one column) or "
                     "latent (another scale's latent, computed in-graph)", choices=INPUT_KINDS)
    columns: tuple[str, ...] = _key("numeric: the column names, in order", ())
    column: str = _key("categorical: the column name", "")
    scale: str = _key("latent: the scale whose latent this group is", "")
    rename: tuple[tuple[str, str], ...] = _key(
        "latent: {upstream column = column in this scale's file} for upstream inputs stored "
        "under other names here", ())


@dataclass(frozen=True)
class EncoderSpec:
    """Encoder MLP: concatenated inputs -> hidden layers -> latent."""

    latent_size: int = _key("latent dimension", 8, gt=0)
    hidden: tuple[int, ...] = _key("hidden layer widths", (), gt=0)
    activation: str = _key("hidden activation", "tanh", choices=ACTIVATIONS)
    latent_activation: str = _key("activation of the latent layer", "tanh", choices=ACTIVATIONS)
    dropout: float = _key("dropout rate after each hidden layer (training only)", 0.0,
                          min=0.0, lt=1.0)
    init: str = _key("weight init (biases are zero)", "xavier_normal", choices=INITS)
    init_gain: float = _key("gain of the Xavier init", 1.0, gt=0.0)
    l1: float = _key("L1 penalty coefficient on the weights (not biases), added to every "
                     "mini-batch loss", 0.0, min=0.0)
    l2: float = _key("L2 penalty coefficient (sum of squared weights)", 0.0, min=0.0)
    module: str = _key(MODULE_DOC, "")
    options: tuple[tuple[str, Any], ...] = _key(OPTIONS_DOC, ())


@dataclass(frozen=True)
class HeadSpec:
    """A head on the latent: an MLP and a loss."""

    name: str
    kind: str = _key("regression (predict target columns), reconstruction (an input group, in "
                     "standardised units) or categorical (softmax over a column's classes)",
                     choices=HEAD_KINDS)
    target: tuple[str, ...] = _key("regression: target column(s), raw units; categorical: a "
                                   "column that is not an input", ())
    input: str = _key("reconstruction / categorical: the input group reconstructed", "")
    hidden: tuple[int, ...] = _key("hidden layer widths", (), gt=0)
    activation: str = _key("hidden activation", "relu", choices=ACTIVATIONS)
    output_activation: str = _key("activation of the output layer (ignored for categorical: "
                                  "logits)", "linear", choices=ACTIVATIONS)
    dropout: float = _key("dropout after each hidden layer (training only)", 0.0, min=0.0, lt=1.0)
    loss: str = _key("mae, mse, huber or cross_entropy (default: cross_entropy for categorical, "
                     "mae otherwise)", "", choices=LOSSES + ("",))
    huber_delta: float = _key("delta of the huber loss", 1.0, gt=0.0)
    weight: float = _key("weight of this head's loss in the total", 1.0, min=0.0)
    init: str = _key("weight init", "xavier_normal", choices=INITS)
    init_gain: float = _key("gain of the Xavier init", 1.0, gt=0.0)
    l1: float = _key("L1 penalty on this head's weights", 0.0, min=0.0)
    l2: float = _key("L2 penalty on this head's weights", 0.0, min=0.0)
    reference: tuple[tuple[str, float], ...] = _key(
        "published figures to print beside ours, e.g. {mae = 0.167, r2 = 0.956}", ())
    module: str = _key(MODULE_DOC, "")
    options: tuple[tuple[str, Any], ...] = _key(OPTIONS_DOC, ())

    @property
    def loss_name(self) -> str:
        return self.loss or ("cross_entropy" if self.kind == "categorical" else "mae")


@dataclass(frozen=True)
class TrainingSpec:
    """Optimiser and loop settings (Adam, no schedule, fixed epochs: the paper's protocol)."""

    epochs: int = _key("training epochs", 1500, gt=0)
    batch_size: int = _key("mini-batch size (last partial batch kept; larger than the "
                           "training rows = one full batch per epoch)", 32, gt=0)
    learning_rate: float = _key("Adam learning rate", 1e-3, gt=0.0)
    b1: float = _key("Adam beta1", 0.9, min=0.0, lt=1.0)
    b2: float = _key("Adam beta2", 0.999, min=0.0, lt=1.0)
    eps: float = _key("Adam epsilon", 1e-8, gt=0.0)
    seed: int = _key("seed of initial weights, shuffling and dropout", 0, min=0)
    ensemble: int = _key("models per fold, seeds seed, seed+1, ..., trained in the same "
                         "compiled call; predictions are their mean (std reported)", 1, gt=0)
    chunk_epochs: int = _key("epochs per compiled chunk (progress and checkpoints between "
                             "chunks)", 100, gt=0)
    eval_every: int = _key("record the training and validation losses (history.csv, learning "
                           "curves, training.select = best) every this many epochs and at the "
                           "end of every chunk; evaluating every epoch costs about a third of "
                           "a small model's training time", 10, gt=0)
    checkpoint_every: int = _key("save a checkpoint every this many epochs (rounded to chunks; "
                                 "0 = only at the end); --resume continues from it", 500,
                                 min=0)
    select: str = _key("parameters evaluated and used for prediction: last (the paper) or best "
                       "(lowest validation loss; optimistic for validation metrics)", "last",
                       choices=("last", "best"))


@dataclass(frozen=True)
class CVSpec:
    """Cross-validation: which rows validate which of the models trained together."""

    kind: str = _key("kfold, group (GroupKFold), stratified (on a binned target) or none "
                     "(train one model on all rows)", "kfold", choices=CV_KINDS)
    n_splits: int = _key("number of folds", 5, min=2)
    shuffle: bool = _key("shuffle before splitting", True)
    random_state: int = _key("seed of the split (scikit-learn's random_state)", 0, min=0)
    group_by: tuple[str, ...] = _key("group: columns whose identical values form a group; "
                                     "empty = identical encoder input rows", ())
    stratify_on: str = _key("stratified: the target column (default: first regression "
                            "target)", "")
    bins: int = _key("stratified: number of quantile bins of the target", 5, min=2)


@dataclass(frozen=True)
class ScaleSpec:
    """One scale of the chain: its data, inputs, encoder, heads and training."""

    name: str
    data: str = _key("CSV file, or a data set shipped with the package, 'dataset:NAME' "
                     f"({', '.join(datasets.list_datasets())}); a relative path resolves "
                     "against --data-root, else $NESTED_AE_DATA, else the config's folder")
    inputs: tuple[InputGroup, ...] = _key("[scales.S.inputs.GROUP] tables", ())
    heads: tuple[HeadSpec, ...] = _key("[scales.S.heads.HEAD] tables", ())
    encoder: EncoderSpec = _key("[scales.S.encoder] table", EncoderSpec())
    training: TrainingSpec = _key("[scales.S.training] table", TrainingSpec())
    cv: CVSpec = _key("[scales.S.cv] table", CVSpec())
    scaler: str = _key("fit standardisation on each fold's training rows (train) or on all "
                       "rows before splitting (all, the paper's choice)", "train",
                       choices=SCALER_FITS)
    column_names: tuple[str, ...] = _key("names for a CSV without a header row (empty: the "
                                         "file has a header)", ())

    def group(self, name: str) -> InputGroup:
        return next(g for g in self.inputs if g.name == name)

    @property
    def upstream(self) -> tuple[str, ...]:
        """Names of the scales whose latents this scale takes."""
        return tuple(g.scale for g in self.inputs if g.kind == "latent")


@dataclass(frozen=True)
class ChainSpec:
    """How trained scales feed the next one (used when a config has several scales)."""

    split: str = _key("matched: folds are dealt once per linked entity and shared by every "
                      "scale, and the upstream model of fold k feeds the downstream models of "
                      "fold k (no validation row's latent comes from a model that trained on "
                      "that entity); independent: every scale splits on its own and chain.feed "
                      "chooses the feeding model (the paper's protocol)", "matched",
                      choices=SPLIT_MODES)
    link: tuple[str, ...] = _key("columns (upstream names, found in a downstream file through "
                                 "the rename tables) whose equal values make rows of two scales "
                                 "the same entity; empty = the upstream scale's own input "
                                 "columns (the same composition)", ())
    link_tolerance: float = _key("numeric link values agree when they differ by at most this "
                                 "share of their size (the published files round descriptors "
                                 "to 3 significant figures)", 0.01, min=0.0)

    feed: str = _key("split = independent: which upstream model computes a downstream "
                     "scale's latent inputs: fold (one chosen fold, the paper), all_rows (a "
                     "model trained on all upstream rows) or fold_mean (mean of the fold "
                     "models' latents)", "fold", choices=FEEDS)
    feed_fold: int = _key("feed = fold: which fold", 0, min=0)
    transfer_scaler: str = _key("standardise upstream inputs on downstream rows with the "
                                "upstream scale's training scaler (upstream) or re-fit on the "
                                "downstream rows (refit, the original program's defect)",
                                "upstream", choices=TRANSFER_SCALERS)
    finetune_epochs: int = _key("epochs of joint end-to-end fine-tuning after sequential "
                                "training (0 = none, the paper)", 0, min=0)
    finetune_learning_rate: float = _key("Adam learning rate of fine-tuning", 1e-4, gt=0.0)
    finetune_weights: tuple[tuple[str, float], ...] = _key(
        "{scale = weight} of each scale's loss in the fine-tuning objective (default 1)", ())


@dataclass(frozen=True)
class Config:
    """A whole model: scales in dependency order, plus chain settings."""

    scales: tuple[ScaleSpec, ...]
    chain: ChainSpec = ChainSpec()
    source: str = ""  # file the config came from (for messages); not a TOML key

    @property
    def specs(self) -> dict[str, ScaleSpec]:
        """{SCALE: ScaleSpec}, in the config's (dependency) order."""
        return {s.name: s for s in self.scales}

    def scale(self, name: str) -> ScaleSpec:
        for s in self.scales:
            if s.name == name:
                return s
        raise ConfigError(f"{self.source}: no scale named '{name}'"
                          f"{did_you_mean(name, [s.name for s in self.scales])}")


# ----------------------------------------------------------------------------------------------
# Parsing


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if args and typing.get_origin(args[0]) is tuple:  # mapping stored as pairs
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a table {{key = value}}")
            item = typing.get_args(args[0])[1]
            return tuple((str(k), _freeze(v, f"{where}.{k}") if item is Any else
                          _convert(v, item, f"{where}.{k}")) for k, v in value.items())
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
                and args[0] is str:
            value = [value]  # a single column name is accepted for a list of names
        if not isinstance(value, list):
            plural = {int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
            raise ConfigError(f"{where} must be a list of {plural}, got {value!r}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp in (str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    return value


def _freeze(value: Any, where: str) -> Any:
    """A module option: a number, string, boolean or (nested) list of them, lists as tuples
    (so that specs stay hashable)."""
    if isinstance(value, list):
        return tuple(_freeze(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"{where} must be a number, string, boolean or list, got {value!r}")


def _check(value: Any, meta: dict, where: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, tuple):
            continue
        if "choices" in meta and v not in meta["choices"]:
            choices = ", ".join(c for c in meta["choices"] if c)
            raise ConfigError(f"{where} = {v!r} is not one of: {choices}"
                              f"{did_you_mean(str(v), meta['choices'])}")
        if "gt" in meta and not v > meta["gt"]:
            raise ConfigError(f"{where} must be > {meta['gt']}, got {v!r}")
        if "min" in meta and not v >= meta["min"]:
            raise ConfigError(f"{where} must be >= {meta['min']}, got {v!r}")
        if "lt" in meta and not v < meta["lt"]:
            raise ConfigError(f"{where} must be < {meta['lt']}, got {v!r}")


def _parse_table(cls: type, table: Any, where: str, **given: Any) -> Any:
    """Build dataclass ``cls`` from a TOML table: unknown keys, types and values are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in given}
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, known)}")
    if table.get("module") and cls in (EncoderSpec, HeadSpec):
        for key in BUILTIN_KEYS:
            if key in table:
                raise ConfigError(f"{where}: '{key}' configures the built-in network; with "
                                  f"module = {table['module']!r} set it in the module's "
                                  "options instead, or remove it")
    if table.get("options") and not table.get("module") and cls in (EncoderSpec, HeadSpec):
        raise ConfigError(f"{where}.options: only used with 'module' (a user Flax module)")
    kwargs = dict(given)
    for name, f in known.items():
        if name in table:
            value = _convert(table[name], hints[name], f"{where}.{name}")
            _check(value, f.metadata, f"{where}.{name}")
            kwargs[name] = value
        elif f.default is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{name}' ({f.metadata['doc']})")
    return cls(**kwargs)


def _parse_scale(name: str, table: Any, where: str) -> ScaleSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    table = dict(table)
    nested: dict[str, Any] = {"name": name}
    for key, cls in (("encoder", EncoderSpec), ("training", TrainingSpec), ("cv", CVSpec)):
        if key in table:
            nested[key] = _parse_table(cls, table.pop(key), f"{where}.{key}")
    for key, cls in (("inputs", InputGroup), ("heads", HeadSpec)):
        sub = table.pop(key, {})
        if not isinstance(sub, dict) or not sub:
            raise ConfigError(f"{where}.{key} must hold at least one [{where}.{key}.NAME] table")
        nested[key] = tuple(_parse_table(cls, t, f"{where}.{key}.{n}", name=n)
                            for n, t in sub.items())
    return _parse_table(ScaleSpec, table, where, **nested)


def split_module_reference(ref: str, where: str) -> tuple[str, str]:
    """``"file.py:factory"`` or ``"package.module:factory"`` -> (file or module, factory)."""
    path, sep, factory = ref.rpartition(":")
    if not sep or not path or not factory.isidentifier():
        raise ConfigError(f"{where} = {ref!r}: expected 'file.py:factory' (a file relative to "
                          "the config's folder) or 'package.module:factory'")
    return path, factory


def resolve_module(ref: str, base: Path, where: str) -> str:
    """A module reference with its file (if it names one) made absolute against ``base`` and
    checked to exist; a package reference is left as it is (imported when the model is
    built)."""
    path, factory = split_module_reference(ref, where)
    if not path.endswith(".py"):
        return ref
    file = Path(path).expanduser()
    file = file if file.is_absolute() else (base / file).resolve()
    if not file.is_file():
        raise ConfigError(f"{where} = {ref!r}: file not found: {file} (a module file is "
                          "relative to the config's folder)")
    return f"{file}:{factory}"


def map_modules(spec: ScaleSpec, fn) -> ScaleSpec:
    """The scale spec with ``fn(ref, key)`` applied to the module reference of every component
    that has one (key: ``encoder.module`` or ``heads.H.module``, for messages)."""
    enc = spec.encoder
    if enc.module:
        enc = dataclasses.replace(enc, module=fn(enc.module, "encoder.module"))
    heads = tuple(dataclasses.replace(h, module=fn(h.module, f"heads.{h.name}.module"))
                  if h.module else h for h in spec.heads)
    return dataclasses.replace(spec, encoder=enc, heads=heads)


def _validate(cfg: Config, src: str) -> None:
    """Cross-references: heads name existing inputs, links name earlier scales, no cycles."""
    seen: list[str] = []
    for s in cfg.scales:
        where = f"{src}: scales.{s.name}"
        groups = {g.name: g for g in s.inputs}
        for g in s.inputs:
            w = f"{where}.inputs.{g.name}"
            if g.kind == "numeric" and not g.columns:
                raise ConfigError(f"{w}: a numeric group needs 'columns'")
            if g.kind == "categorical" and not g.column:
                raise ConfigError(f"{w}: a categorical group needs 'column'")
            if g.kind == "latent":
                if g.scale == s.name:
                    raise ConfigError(f"{w}: a scale cannot take its own latent (cycle)")
                if g.scale not in [x.name for x in cfg.scales]:
                    raise ConfigError(f"{w}.scale = '{g.scale}' is not a scale of this config"
                                      f"{did_you_mean(g.scale, [x.name for x in cfg.scales])}")
                if g.scale not in seen:
                    raise ConfigError(f"{w}.scale = '{g.scale}': scales must come after the "
                                      "scales they take latents from (cycle or wrong order)")
        input_columns = {c for g in s.inputs for c in (*g.columns, g.column) if c}
        for h in s.heads:
            w = f"{where}.heads.{h.name}"
            leak = sorted(input_columns & set(h.target))
            if leak:
                raise ConfigError(f"{w}.target: column '{leak[0]}' is also an encoder input "
                                  "(the head would see its own answer); remove it from the "
                                  "inputs or use a reconstruction/categorical head on it")
            if h.kind == "regression" and not h.target:
                raise ConfigError(f"{w}: a regression head needs 'target' column(s)")
            if h.kind in ("reconstruction", "categorical") and h.input:
                if h.input not in groups:
                    raise ConfigError(f"{w}.input = '{h.input}' is not an input group of "
                                      f"scale '{s.name}'{did_you_mean(h.input, groups)}")
                want = ("categorical",) if h.kind == "categorical" else ("numeric", "latent")
                if groups[h.input].kind not in want:
                    raise ConfigError(f"{w}: a {h.kind} head cannot reconstruct the "
                                      f"{groups[h.input].kind} group '{h.input}'")
            if h.kind == "reconstruction" and not h.input:
                raise ConfigError(f"{w}: a reconstruction head needs 'input'")
            if h.kind == "categorical" and not (h.input or len(h.target) == 1):
                raise ConfigError(f"{w}: a categorical head needs 'input' or one 'target'")
            if h.kind == "categorical" and h.loss_name != "cross_entropy":
                raise ConfigError(f"{w}.loss: categorical heads use cross_entropy")
            if h.kind != "categorical" and h.loss_name == "cross_entropy":
                raise ConfigError(f"{w}.loss: cross_entropy is for categorical heads")
        if s.cv.kind == "stratified" and not (s.cv.stratify_on or any(
                h.kind == "regression" for h in s.heads)):
            raise ConfigError(f"{where}.cv: stratified needs stratify_on or a regression head")
        seen.append(s.name)
    names = [s.name for s in cfg.scales]
    for key, _ in cfg.chain.finetune_weights:
        if key not in names:
            raise ConfigError(f"{src}: chain.finetune_weights names unknown scale '{key}'"
                              f"{did_you_mean(key, names)}")
    if cfg.chain.split == "matched" and cfg.chain.feed != "fold":
        raise ConfigError(f"{src}: chain.feed = {cfg.chain.feed} needs chain.split = "
                          "\"independent\" (with matched folds the upstream model of fold k "
                          "feeds fold k; an all-rows or fold-mean latent would leak)")
    if cfg.chain.split == "matched":
        linked = [s for s in cfg.scales if s.upstream or any(
            s.name in x.upstream for x in cfg.scales)]
        splits = {s.cv.n_splits for s in linked if s.cv.kind != "none"}
        if len(splits) > 1:
            raise ConfigError(f"{src}: chain.split = \"matched\" shares folds between the "
                              f"scales, which need the same cv.n_splits (got {sorted(splits)})")
    if cfg.chain.feed == "fold" and cfg.chain.split == "independent":
        for s in cfg.scales:
            if s.name in {u for x in cfg.scales for u in x.upstream} and s.cv.kind != "none" \
                    and cfg.chain.feed_fold >= s.cv.n_splits:
                raise ConfigError(f"{src}: chain.feed_fold = {cfg.chain.feed_fold} but scale "
                                  f"'{s.name}' has {s.cv.n_splits} folds")


def parse_config(doc: dict, source: str = "<config>",
                 base: str | os.PathLike | None = None) -> Config:
    """Validate a TOML document (already parsed to a dict) into a :class:`Config`.

    Module files (``module = "file.py:factory"``) are made absolute against ``base``, default
    the folder of ``source`` (the working directory for an in-memory ``<...>`` source)."""
    doc = dict(doc)
    scales = doc.pop("scales", None)
    if not isinstance(scales, dict) or not scales:
        raise ConfigError(f"{source}: needs at least one [scales.NAME] table")
    chain = _parse_table(ChainSpec, doc.pop("chain", {}), f"{source}: chain")
    for key in doc:
        raise ConfigError(f"{source}: unknown top-level key '{key}'"
                          f"{did_you_mean(key, ['scales', 'chain'])}")
    parsed = tuple(_parse_scale(n, t, f"{source}: scales.{n}") for n, t in scales.items())
    if base is None:
        base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
    parsed = tuple(map_modules(s, lambda ref, key: resolve_module(
        ref, Path(base), f"{source}: scales.{s.name}.{key}")) for s in parsed)
    cfg = Config(scales=parsed, chain=chain, source=source)
    _validate(cfg, source)
    return cfg


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(doc, str(path))


def resolve_data_path(data: str, config_dir: str | os.PathLike | None,
                      data_root: str | os.PathLike | None = None) -> Path | str:
    """Where a scale's data file is: a shipped data set ``dataset:NAME`` stays that reference
    (checked; ``data.read_table`` reads it), a path is absolute as given, else under
    --data-root, else under $NESTED_AE_DATA, else relative to the config's folder."""
    if datasets.is_reference(data):
        return datasets.PREFIX + datasets.dataset_name(data)
    p = Path(data).expanduser()
    if p.is_absolute():
        return p
    base = data_root or os.environ.get("NESTED_AE_DATA") or config_dir or "."
    return (Path(base) / p).resolve()


# ----------------------------------------------------------------------------------------------
# Serialisation (the resolved config written to a run directory)


def _table(obj: Any) -> dict:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in ("name", "source"):
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = _table(value)
        elif f.name in ("inputs", "heads"):
            out[f.name] = {v.name: _table(v) for v in value}
        elif f.name in ("rename", "finetune_weights", "reference"):
            out[f.name] = dict(value)
        elif f.name == "options":
            out[f.name] = {k: _thaw(v) for k, v in value}
        elif f.name in BUILTIN_KEYS and getattr(obj, "module", ""):
            continue  # a user module: the built-in network's keys do not apply
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def config_to_dict(cfg: Config) -> dict:
    """The config as a TOML-ready dict with every default filled in; parse_config reads it."""
    return {"chain": _table(cfg.chain), "scales": {s.name: _table(s) for s in cfg.scales}}


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (1e-3, 12, true, [8, 8], "x"); anything
    that is not TOML is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def override(cfg: Config, settings: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with settings changed and validated again.

    Keys are dotted paths: ``SCALE.encoder.l1``, ``SCALE.heads.gap.dropout``, ``chain.feed``;
    the scale name may be left out when the config has a single scale. Unknown paths and bad
    values are ConfigErrors naming the setting.
    """
    doc = config_to_dict(cfg)
    scales = doc["scales"]
    for key, value in settings.items():
        parts = key.split(".")
        if parts[0] == "chain":
            table, rest, where = doc["chain"], parts[1:], "chain"
        elif parts[0] in scales:
            table, rest, where = scales[parts[0]], parts[1:], f"scales.{parts[0]}"
        elif len(scales) == 1:
            (only,) = scales
            table, rest, where = scales[only], parts, f"scales.{only}"
        else:
            raise ConfigError(f"setting '{key}': start it with a scale name, one of "
                              f"{list(scales)}{did_you_mean(parts[0], scales)}")
        if not rest:
            raise ConfigError(f"setting '{key}' names a table, not a key")
        for p in rest[:-1]:
            if not isinstance(table.get(p), dict):
                raise ConfigError(f"setting '{key}': {where} has no table '{p}'"
                                  f"{did_you_mean(p, [k for k, v in table.items() if isinstance(v, dict)])}")
            table, where = table[p], f"{where}.{p}"
        if rest[-1] not in table:
            raise ConfigError(f"setting '{key}': {where} has no key '{rest[-1]}'"
                              f"{did_you_mean(rest[-1], table)}")
        table[rest[-1]] = value
    return parse_config(doc, cfg.source)


def replace_scale(cfg: Config, name: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with fields of scale ``name`` (or of its sub-tables) replaced.

    ``changes`` keys are ScaleSpec fields or ``"encoder.latent_size"``-style dotted paths.
    """
    def apply(obj: Any, path: list[str], value: Any) -> Any:
        if len(path) == 1:
            return dataclasses.replace(obj, **{path[0]: value})
        return dataclasses.replace(obj, **{path[0]: apply(getattr(obj, path[0]), path[1:],
                                                          value)})
    scales = []
    for s in cfg.scales:
        if s.name == name:
            for key, value in changes.items():
                s = apply(s, key.split("."), value)
        scales.append(s)
    return dataclasses.replace(cfg, scales=tuple(scales))


def key_reference() -> str:
    """Markdown table of every config key (type, default, meaning), for docs/configuration.md."""
    rows = ["| table | key | type | default | meaning |", "|---|---|---|---|---|"]
    tables = [("[chain]", ChainSpec), ("[scales.S]", ScaleSpec),
              ("[scales.S.inputs.G]", InputGroup), ("[scales.S.encoder]", EncoderSpec),
              ("[scales.S.heads.H]", HeadSpec), ("[scales.S.training]", TrainingSpec),
              ("[scales.S.cv]", CVSpec)]
    for table, cls in tables:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("name", "source") or dataclasses.is_dataclass(f.default) or \
                    f.name in ("inputs", "heads"):
                continue
            tp = hints[f.name]
            tname = ("table" if f.name in ("rename", "finetune_weights", "reference",
                                           "options") else
                     f"list of {typing.get_args(tp)[0].__name__}"
                     if typing.get_origin(tp) is tuple else tp.__name__)
            default = "required" if f.default is dataclasses.MISSING else repr(f.default)
            if isinstance(f.default, tuple):
                default = "{}" if tname == "table" else "[]"
            doc = f.metadata["doc"]
            if "choices" in f.metadata:
                doc += " (one of: " + ", ".join(c for c in f.metadata["choices"] if c) + ")"
            rows.append(f"| `{table}` | `{f.name}` | {tname} | `{default}` | {doc} |")
    return "\n".join(rows)

