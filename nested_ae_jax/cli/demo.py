"""``nested-ae demo``: the embedded default job (synthetic data, no files needed)."""

from __future__ import annotations

import sys
from pathlib import Path

from .train import train_and_write


def add_parser(sub):
    p = sub.add_parser("demo", help="train a two-scale chain on synthetic data (no files)")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--rows", type=int, default=600, help="synthetic rows (default 600)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="Gaussian noise on descriptors, fraction of each column's std")
    p.add_argument("--epochs", type=int, default=300, help="epochs per scale (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    from .. import store
    from ..demo import demo_config, write_demo_data

    out = Path(args.out)
    data_dir = out.resolve() / "data"
    store.prepare_out_dir(out, overwrite=args.overwrite)
    write_demo_data(data_dir, rows=args.rows, noise=args.noise, seed=args.seed)
    cfg = demo_config(data_dir, epochs=args.epochs, seed=args.seed)
    print(f"demo: two-scale nested autoencoder on {args.rows} synthetic rows "
          f"(noise {args.noise}), 5-fold CV, {args.epochs} epochs", file=sys.stderr)
    return train_and_write(cfg, out, overwrite=True, quiet=args.quiet)
