#!/usr/bin/env python
"""Facts about the shipped data sets that the pages quote, as JSON lines: each data set's
shape and file size, and on the paper chain's device data the CV groups of ``nested-ae
compare --cv group_rows,group_composition`` (identical encoder input rows; compositions) with
the largest group's row count.

Usage: python experiments/dataset_facts.py [CONFIG]   (default: the paper chain)
"""
from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nested_ae_jax import datasets                                  # noqa: E402
from nested_ae_jax.compare.configs import group_columns             # noqa: E402
from nested_ae_jax.config import load_config                        # noqa: E402
from nested_ae_jax.data import read_table                           # noqa: E402


def main(config: str = "experiments/perovskite/nested_pce.toml") -> None:
    data = files(datasets) / "data"
    total = 0
    for name in datasets.list_datasets():
        table = datasets.load(name)
        size = (data / datasets._FILES[name][0]).stat().st_size
        total += size
        print(json.dumps({"dataset": name, "rows": len(table), "columns": table.shape[1],
                          "bytes": size}))
    print(json.dumps({"dataset": "all", "bytes": total}))
    cfg = load_config(config)
    for scale in cfg.scales:
        if not scale.upstream:
            continue
        table = read_table(scale.data)
        for split in ("group_rows", "group_composition"):
            sizes = table.groupby(list(group_columns(cfg, scale.name, split))).size()
            print(json.dumps({"scale": scale.name, "split": split, "rows": len(table),
                              "groups": len(sizes), "largest": int(sizes.max())}))


if __name__ == "__main__":
    main(*sys.argv[1:])
