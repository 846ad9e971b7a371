"""Reading a scale's data file and turning it into arrays, with errors that name the problem.

Columns are always selected by name. Numeric inputs and regression targets must be finite
numbers; categorical columns become integer codes over a category list that is fitted once on
the training file and stored with the model (an unknown category at prediction time is an
error). Standardisation statistics are fitted per model on its training rows
(:func:`fit_stats`) and live in the model's ``stats`` pytree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import datasets
from .config import ScaleSpec
from .errors import DataError, did_you_mean


def read_table(path: str | Path, column_names: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV file (``column_names``: names for a file without a header row), or a shipped
    data set named ``dataset:NAME`` (``column_names`` then rename its columns)."""
    if datasets.is_reference(path):
        return datasets.load(str(path), column_names)
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path} (set --data-root or NESTED_AE_DATA, fix "
                        "the path in the config, or name a shipped data set: "
                        f"{', '.join(datasets.PREFIX + n for n in datasets.list_datasets())})")
    if path.is_dir():
        raise DataError(f"data path is a directory, not a CSV file: {path}")
    try:
        if column_names:
            frame = pd.read_csv(path, header=None, names=list(column_names))
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path} (a CSV file needs a header row and data "
                        "rows)") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read data file {path}: {str(err).splitlines()[0]} (is it a "
                        "CSV text file in UTF-8?)") from None
    if len(frame) == 0:
        raise DataError(f"data file has a header but no rows: {path}; add data rows")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: duplicated column name(s) {duplicated}; rename or remove "
                        "one of each")
    dup_pandas = [c for c in frame.columns if isinstance(c, str) and c.rsplit(".", 1)[0] in
                  frame.columns and c.rsplit(".", 1)[-1].isdigit()]
    if dup_pandas:
        raise DataError(f"{path}: duplicated column name '{dup_pandas[0].rsplit('.', 1)[0]}'; "
                        "rename or remove one of them")
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Error naming the first missing column and the closest existing name."""
    names = [str(x) for x in frame.columns]
    for c in columns:
        if c not in frame.columns:
            hint = did_you_mean(c, names) or (f" (it has {names[:8]}"
                                              f"{' ...' if len(names) > 8 else ''})")
            raise DataError(f"{source}: no column '{c}'{hint}; fix the name in the config or "
                            "the file")


def numeric_block(frame: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    """(N, len(columns)) float32 of finite numbers, or an error naming column, row and value."""
    require_columns(frame, columns, source)
    out = np.empty((len(frame), len(columns)), np.float32)
    for j, c in enumerate(columns):
        values = pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raw = frame[c].iloc[i]
            raw = raw.item() if isinstance(raw, np.generic) else raw
            what = "missing (NaN)" if pd.isna(raw) else f"not a finite number ({raw!r})"
            raise DataError(f"{source}: column '{c}' row {i + 2} is {what}; "
                            f"{int(bad.sum())} bad value(s) in that column: fix or remove "
                            "those rows")
        out[:, j] = values
    return out


def fit_categories(frame: pd.DataFrame, column: str, source: str) -> tuple[str, ...]:
    """Sorted class labels of a categorical column."""
    require_columns(frame, [column], source)
    values = frame[column]
    if values.isna().any():
        raise DataError(f"{source}: column '{column}' row {int(np.argmax(values.isna())) + 2} "
                        "is empty (categorical values must be present: fill it in or remove "
                        "the row)")
    cats = tuple(sorted(values.astype(str).unique()))
    if len(cats) < 2:
        raise DataError(f"{source}: categorical column '{column}' has a single class "
                        f"{cats[0]!r}; it carries no information, remove it from the config")
    return cats


def encode_categories(frame: pd.DataFrame, column: str, categories: tuple[str, ...],
                      source: str) -> np.ndarray:
    """(N,) int32 codes into ``categories``; unknown labels are an error."""
    require_columns(frame, [column], source)
    values = frame[column].astype(str).to_numpy()
    index = {c: i for i, c in enumerate(categories)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise DataError(f"{source}: column '{column}' has unknown categor"
                        f"{'y' if len(unknown) == 1 else 'ies'} {unknown[:3]}; the model knows "
                        f"{list(categories)}")
    return np.array([index[v] for v in values], np.int32)


@dataclass(frozen=True)
class Categories:
    """Class labels per categorical input group and per categorical target head."""

    groups: dict[str, tuple[str, ...]]
    heads: dict[str, tuple[str, ...]]

    def to_json(self) -> dict:
        return {"groups": {k: list(v) for k, v in self.groups.items()},
                "heads": {k: list(v) for k, v in self.heads.items()}}

    @staticmethod
    def from_json(obj: dict) -> "Categories":
        return Categories({k: tuple(v) for k, v in obj["groups"].items()},
                          {k: tuple(v) for k, v in obj["heads"].items()})


def check_training_frame(spec: ScaleSpec, frame: pd.DataFrame, source: str) -> None:
    """Errors for a training file that cannot be trained on whatever its values: fewer than 2
    rows, fewer rows than folds, a numeric input column with one value in every row."""
    n, where = len(frame), f"scales.{spec.name}"
    if n < 2:
        raise DataError(f"{source}: only {n} row; training needs at least 2 rows (and one per "
                        f"fold of {where}.cv), add rows")
    if spec.cv.kind != "none" and n < spec.cv.n_splits:
        raise DataError(f"{source}: only {n} rows for {where}.cv.n_splits = "
                        f"{spec.cv.n_splits} folds; use more rows or fewer folds")
    for g in spec.inputs:
        for c in g.columns if g.kind == "numeric" else ():
            values = pd.to_numeric(frame[c], errors="coerce") if c in frame.columns else None
            if values is not None and values.notna().all() and values.nunique() == 1:
                raise DataError(f"{source}: input group '{g.name}' column '{c}' is constant "
                                f"({values.iloc[0].item()!r} in every row, zero variance); "
                                f"remove it from {where}.inputs.{g.name}.columns")


def fit_scale_categories(spec: ScaleSpec, frame: pd.DataFrame, source: str) -> Categories:
    """Class labels fitted on a scale's training file (which is first checked with
    :func:`check_training_frame`)."""
    check_training_frame(spec, frame, source)
    groups = {g.name: fit_categories(frame, g.column, source)
              for g in spec.inputs if g.kind == "categorical"}
    heads = {h.name: fit_categories(frame, h.target[0], source)
             for h in spec.heads if h.kind == "categorical" and not h.input}
    return Categories(groups, heads)


def encode_inputs(spec: ScaleSpec, frame: pd.DataFrame, categories: Categories, source: str
                  ) -> dict[str, np.ndarray]:
    """Raw encoder inputs of the scale's own groups (latent groups are filled in by the
    chain): numeric (N, d) float32, categorical (N,) int32 codes."""
    out = {}
    for g in spec.inputs:
        if g.kind == "numeric":
            out[g.name] = numeric_block(frame, list(g.columns), source)
        elif g.kind == "categorical":
            out[g.name] = encode_categories(frame, g.column, categories.groups[g.name], source)
    return out


def encode_targets(spec: ScaleSpec, frame: pd.DataFrame, categories: Categories, source: str
                   ) -> dict[str, np.ndarray]:
    """Targets of heads that read data columns: regression (N, k) float32, categorical
    target columns (N,) int32."""
    out = {}
    for h in spec.heads:
        if h.kind == "regression":
            out[h.name] = numeric_block(frame, list(h.target), source)
        elif h.kind == "categorical" and not h.input:
            out[h.name] = encode_categories(frame, h.target[0], categories.heads[h.name], source)
    return out


CONSTANT_RTOL = 1e-6  # spread below this x |value| (float32 rounding) counts as constant


def fit_stats(x: np.ndarray, masks: np.ndarray, *, name: str, source: str,
              allow_constant: bool = False) -> dict:
    """Standardisation of ``x`` (N, d), or (M, N, d) with one block of rows per model, on each
    mask's rows (masks (M, N)): {"mean": (M, d), "scale": (M, d)}.

    Population standard deviation (scikit-learn's StandardScaler). A column that is constant
    over every row is an error (unless ``allow_constant``: a dead upstream latent unit); one
    that is constant on a model's training rows (its spread there within float32 rounding of
    its value) gets scale 1, so other rows keep their raw offsets instead of blowing up.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(masks, np.float64)
    xm = np.broadcast_to(x, (w.shape[0], *x.shape[-2:]))  # (M, N, d)
    if (np.ptp(x.reshape(-1, x.shape[-1]), axis=0) == 0).any() and not allow_constant:
        col = int(np.argmax(np.ptp(x.reshape(-1, x.shape[-1]), axis=0) == 0))
        raise DataError(f"{source}: input group '{name}' column {col} is constant (zero "
                        "variance); remove it from the inputs")
    n = np.maximum(w.sum(axis=1), 1.0)[:, None]
    mean = np.einsum("mn,mnd->md", w, xm) / n
    var = np.einsum("mn,mnd->md", w, (xm - mean[:, None, :]) ** 2) / n
    rows = w[:, :, None] > 0
    spread = np.where(rows, xm, -np.inf).max(axis=1) - np.where(rows, xm, np.inf).min(axis=1)
    constant = ~(spread > CONSTANT_RTOL * np.abs(mean))  # also no rows at all (nan/-inf)
    scale = np.where(constant, 1.0, np.sqrt(var))
    return {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32)}


def input_group_columns(spec: ScaleSpec) -> list[str]:
    """The data columns of the scale's own numeric and categorical groups, in order."""
    cols: list[str] = []
    for g in spec.inputs:
        cols.extend(g.columns if g.kind == "numeric" else [g.column] if g.column else [])
    return cols


@dataclass
class ScaleData:
    """A scale's rows as arrays. inputs: {GROUP: (N, d) float32 | (N,) int32 codes} (latent
    groups: filled by the chain, (N, L) or (M, N, L) when every model has its own feeding
    model); targets: {HEAD: (N, k) float32 | (N,) int32} for heads that read data columns."""

    frame: pd.DataFrame
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    categories: Categories
    source: str

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    def with_inputs(self, **inputs: np.ndarray) -> "ScaleData":
        """A copy with some input groups replaced (e.g. latent groups filled in)."""
        return replace(self, inputs={**self.inputs, **inputs})


def load_scale_data(spec: ScaleSpec, path: str | Path, categories: Categories | None = None,
                    frame: pd.DataFrame | None = None, with_targets: bool = True) -> ScaleData:
    """Read and encode a scale's own columns (latent groups are added by the chain).
    categories: the stored lists of a trained model (default: fitted on this file)."""
    source = str(path)
    frame = read_table(path, spec.column_names) if frame is None else frame
    categories = fit_scale_categories(spec, frame, source) if categories is None else categories
    inputs = encode_inputs(spec, frame, categories, source)
    targets = encode_targets(spec, frame, categories, source) if with_targets else {}
    return ScaleData(frame, inputs, targets, categories, source)
