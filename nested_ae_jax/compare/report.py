"""Comparison tables as Markdown and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import NestedAEError
from .comparison import Comparison


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
    notes = [f"Note: {n}." for n in result.notes]
    return "\n".join(head + [summary_markdown(result.table), ""] + notes + ([""] if notes else []))


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
    if result.settings:
        paths.append(out / "tuned_baselines.csv")
        io.atomic_write_csv(paths[-1], tuned_table(result))
    return paths


def tuned_table(result: Comparison) -> pd.DataFrame:
    """One row per tuned baseline, target, split, outer fold and target column: the chosen
    setting (one column per parameter) and its inner-CV MAE."""
    return pd.DataFrame([{k: v for k, v in s.items() if k != "params"} | s["params"]
                         for s in result.settings])


