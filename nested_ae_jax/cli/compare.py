"""``nested-ae compare CONFIG``: NestedAE vs single autoencoders vs scikit-learn baselines."""

from __future__ import annotations

import time
from pathlib import Path

from .progress import printer, settings, trained_stage_note

SPLIT_KINDS = ("random", "group_rows", "group_composition", "matched")


def add_parser(sub):
    p = sub.add_parser(
        "compare", help="NestedAE vs single autoencoders and scikit-learn baselines on the "
        "same folds (random and grouped CV); or NestedAE vs one autoencoder over seeds for a "
        "reconstruction-only config")
    p.add_argument("config", nargs="+", help="TOML config file(s)")
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA, "
                   "else the config's folder)")
    p.add_argument("--out", default="runs/compare",
                   help="folder for compare.md, compare.csv, folds.csv (default runs/compare; "
                   "one subfolder per config when several are given)")
    p.add_argument("--cv", help="comma list of split kinds: " + ", ".join(SPLIT_KINDS) +
                   " (default: random,matched; supervised configs only)")
    p.add_argument("--epochs", type=int, help="override every scale's training epochs "
                   "(quick runs)")
    p.add_argument("--tune", action="store_true",
                   help="add random forest, gradient boosting, SVR, ridge and lasso, each tuned "
                   "by nested CV on the same folds (scikit-learn's search over its defaults "
                   "and random settings inside every outer training split; supervised "
                   "configs only)")
    p.add_argument("--tune-trials", type=int, default=20, metavar="N",
                   help="settings each tuned baseline tries per outer split (default 20)")
    p.add_argument("--seeds", type=int, default=10,
                   help="seeds of a reconstruction comparison (default 10)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting first, e.g. chain.split=independent "
                   "(repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    from ..compare import compare
    from ..compare.configs import SPLITS
    from ..config import load_config
    from ..compare.report import markdown_document
    from ..errors import ConfigError

    splits = None
    if args.cv:
        splits = tuple(s.strip() for s in args.cv.split(",") if s.strip())
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ConfigError(f"--cv: unknown split '{bad[0]}'; use a comma list of "
                              f"{', '.join(SPLITS)}")
    start, tables = time.perf_counter(), []
    for path in args.config:
        out = Path(args.out) if len(args.config) == 1 else Path(args.out) / Path(path).stem
        cfg = settings(load_config(path), args)
        result = compare(cfg, data_root=args.data_root, splits=splits, epochs=args.epochs,
                         seeds=args.seeds, out=out, progress=printer(args.quiet),
                         tune=args.tune, tune_trials=args.tune_trials)
        print(markdown_document(result))
        trained_stage_note("compare", cfg)
        tables.append(out)
    print(f"wall time {time.perf_counter() - start:.1f} s; tables in "
          + ", ".join(str(t) for t in tables))
    return 0
