"""The schema: every config key declared once, as frozen dataclasses, with its type, default,
meaning (the field's ``doc`` metadata) and checks (``choices``, ``min``, ``gt``, ``lt``).

A config holds one or more *scales* (``[scales.NAME]`` tables, in file order). Each scale has a
data file, input groups, an encoder, heads, training settings, cross-validation settings and a
scaler policy. The key reference in docs/configuration.md is generated from these declarations
(``nested-ae keys``, :func:`nested_ae_jax.config.reference.key_reference`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .. import datasets
from ..errors import ConfigError, did_you_mean

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
