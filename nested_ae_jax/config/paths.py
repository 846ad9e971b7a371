"""Path resolution: where a scale's data file is (shipped data set, absolute path,
--data-root, $NESTED_AE_DATA or the config's folder)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import datasets


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
