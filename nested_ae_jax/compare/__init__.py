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

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..config import Config, load_config
from .comparison import (RECON_COLUMNS, SKLEARN_MODELS, TABLE_COLUMNS, Comparison,  # noqa: F401
                         Progress, say)
from .configs import DEFAULT_SPLITS, SPLITS


def is_supervised(cfg: Config) -> bool:
    return any(h.kind == "regression" for s in cfg.scales for h in s.heads)


def compare(config: Config | str | Path, *, data_root: str | None = None,
            splits: Sequence[str] | None = None, epochs: int | None = None, seeds: int = 10,
            out: str | Path | None = None, progress: Progress | None = None,
            frames: dict[str, pd.DataFrame] | None = None, tune: bool = False,
            tune_trials: int = 20) -> Comparison:
    """Run the comparison a config calls for (see the module docstring) and, with ``out``,
    write compare.md, compare.csv and folds.csv there. ``splits`` (supervised only; default
    random and matched; any of SPLITS); ``seeds`` (reconstruction only); ``tune``
    (supervised only): add the baselines of :mod:`.tuned`, each tuned by nested CV over
    ``tune_trials`` settings (tuned_baselines.csv: what each outer split chose)."""
    from ..errors import ConfigError
    from .tuned import TUNED_MODELS

    if tune_trials < 1:
        raise ConfigError(f"--tune-trials {tune_trials}: use at least 1")
    cfg = load_config(config) if isinstance(config, (str, Path)) else config
    from .reconstruction import compare_reconstruction
    from .report import write_comparison
    from .supervised import compare_supervised

    if is_supervised(cfg):
        result = compare_supervised(cfg, data_root=data_root, splits=splits or DEFAULT_SPLITS,
                                    epochs=epochs, progress=progress, frames=frames,
                                    tuned=TUNED_MODELS if tune else (), tune_trials=tune_trials)
    else:
        if splits and tuple(splits) != ("random",):
            say(progress, "note: a reconstruction comparison uses the config's own cv; "
                           "--cv is ignored")
        if tune:
            raise ConfigError(f"{cfg.source}: --tune tunes regression baselines; this config "
                              "has no regression head (a reconstruction comparison)")
        result = compare_reconstruction(cfg, data_root=data_root, seeds=seeds, epochs=epochs,
                                        progress=progress, frames=frames)
    if out is not None:
        write_comparison(result, out)
    return result


