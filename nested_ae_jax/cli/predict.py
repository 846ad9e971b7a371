"""``nested-ae predict RUN --data CSV --out CSV``: a trained run on new rows."""

from __future__ import annotations

from .progress import add_stage_option, load_chain, say_stage


def add_parser(sub):
    p = sub.add_parser("predict", help="apply a trained run to new rows")
    p.add_argument("run_dir", help="run directory written by 'train'")
    p.add_argument("--data", required=True, help="CSV with the target scale's raw columns")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--scale", help="target scale (default: the last)")
    p.add_argument("--fold", type=int, help="use one fold's model (default: mean of folds, "
                   "with a .std column); also writes that model's latents")
    p.add_argument("--no-inputs", action="store_true",
                   help="write only the prediction columns")
    add_stage_option(p)
    return p


def run(args) -> int:
    from .. import io
    from ..data import read_table

    chain = load_chain(args)
    frame = read_table(args.data)
    table = chain.predict(frame, scale=args.scale, fold=args.fold, source=str(args.data))
    if not args.no_inputs:
        overlap = table.columns.intersection(frame.columns)
        table = frame.join(table.rename(columns={c: f"{c} (predicted)" for c in overlap}))
    io.atomic_write_csv(args.out, table)
    print(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.out}")
    say_stage(chain)
    return 0
