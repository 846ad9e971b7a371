"""``nested-ae sweep CONFIG --grid KEY=V1,V2 --out DIR``: every combination of a grid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .progress import printer, settings


def add_parser(sub):
    p = sub.add_parser("sweep", help="train every combination of a hyper-parameter grid")
    p.add_argument("config", help="TOML config file")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="settings of the swept scale, e.g. encoder.l1=0,0.01 or "
                   "heads.gap.dropout=0,0.1 or encoder.hidden=[8],[16,16] (repeatable)")
    p.add_argument("--seeds", type=int, help="also sweep training.seed over 0..N-1")
    p.add_argument("--scale", help="scale to sweep (default: the last; upstream scales are "
                   "trained once as configured)")
    p.add_argument("--metric", help="pooled validation metric that picks the best, e.g. "
                   "gap.mae (default: first regression head's MAE)")
    p.add_argument("--out", required=True, help="folder for sweep_runs.csv, sweep_folds.csv, "
                   "best.json")
    p.add_argument("--outer-folds", type=int, default=0, metavar="K",
                   help="nested cross-validation: choose the best setting inside each of K "
                   "outer training splits and score it on the outer validation rows (the "
                   "honest error of 'sweep, then pick the best'; same compiled groups; "
                   "upstream scales of a chain also train one model per nested model, "
                   "without its validation entities)")
    p.add_argument("--lengths", type=int, default=1, metavar="N",
                   help="also score every combination after 1/N, 2/N, ... of the swept "
                   "scale's training.epochs (rounded to whole chunks) from the same run: one "
                   "row per combination and length, column training.epochs (default 1: the "
                   "configured epochs alone; needs training.select = 'last')")
    p.add_argument("--top", type=int, default=10, help="rows of the table to print")
    p.add_argument("--data-root", help="folder for relative data paths")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting before sweeping (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--coordinator", help="multi-host: address HOST:PORT of process 0 "
                   "(jax.distributed.initialize)")
    p.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    p.add_argument("--process-id", type=int, help="multi-host: this process's index")
    return p


def run(args) -> int:
    import jax

    from .. import io
    from ..config import load_config
    from ..sweep import AllDiverged, maximised, parse_grid, relative_keys, sweep
    from ..tune.halving import check_lengths
    from .train import leak_warnings

    check_lengths(args.lengths, "sweep")  # before anything loads or trains
    if args.coordinator:
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    cfg = settings(load_config(args.config), args)
    grid = relative_keys(parse_grid(args.grid or []), cfg, args.scale)
    lengths = _lengths(cfg, args.scale, args.lengths)
    out = Path(args.out)
    try:
        result = sweep(cfg, grid, scale=args.scale, seeds=args.seeds,
                       data_root=args.data_root, progress=printer(args.quiet),
                       metric=args.metric, outer_folds=args.outer_folds, lengths=lengths)
    except AllDiverged as err:  # the tables still say what went wrong
        if jax.process_index() == 0:
            _write_tables(out, err.runs, err.folds)
        raise AllDiverged(f"{err}; wrote {out / 'sweep_runs.csv'} (column diverged)",
                          err.runs, err.folds) from None
    if jax.process_index() != 0:
        return 0
    _write_tables(out, result.runs, result.folds)
    io.atomic_write_json(out / "best.json", {"metric": result.metric, **result.best,
                                             **({"nested": result.nested} if result.nested
                                                else {}),
                                             **({"chain": result.chain} if result.chain
                                                else {})})
    written = ["sweep_runs.csv", "sweep_folds.csv", "best.json"]
    if result.outer is not None:
        io.atomic_write_csv(out / "sweep_outer.csv", result.outer)
        written.append("sweep_outer.csv")
    ascending = not maximised(result.metric)
    shown = result.runs.sort_values(result.metric, ascending=ascending).head(args.top)
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    per = f" x {len(lengths)} lengths" if lengths else ""
    print(f"{len(result.runs) // max(1, len(lengths))} combinations{per} x folds = "
          f"{result.n_models} models in "
          f"{result.n_groups} compiled group(s), {result.seconds:.1f} s on "
          f"{jax.device_count()} device(s); best by {result.metric}: "
          + json.dumps({k: result.best[k] for k in [*grid, "training.seed", "training.epochs",
                                              result.metric]
                        if k in result.best}))
    if result.nested:
        n = result.nested
        print(f"nested CV ({n['outer_folds']} outer x {n['inner_folds']} inner folds): the "
              f"setting chosen on inner folds scores {result.metric} {n['outer']:.4g} on the "
              f"outer validation rows (inner estimate {n['inner']:.4g}; best of the grid on "
              f"the sweep's own folds {n['same_folds']:.4g})")
    for line in leak_warnings(result.chain):
        print(line, file=sys.stderr)
    if result.chain and "nested_leaky_val_rows" in result.chain:
        print(f"nested CV: {result.chain['nested_leaky_val_rows']} validation rows of the "
              "nested models got a latent from an upstream model trained on their entity")
    print("wrote " + ", ".join(str(out / w) for w in written))
    return 0


def _write_tables(out: Path, runs, folds) -> None:
    """sweep_runs.csv and sweep_folds.csv under ``out`` (each written atomically)."""
    from .. import io

    out.mkdir(parents=True, exist_ok=True)
    io.atomic_write_csv(out / "sweep_runs.csv", runs)
    io.atomic_write_csv(out / "sweep_folds.csv", folds)


def _lengths(cfg, scale: str | None, n: int) -> tuple[int, ...]:
    """``--lengths N`` as sweep's lengths: the swept scale's epochs x 1/N, ..., 1 in whole
    chunks (``training_lengths``); N = 1: none (the configured epochs alone, as without)."""
    from ..tune.halving import training_lengths

    if n == 1:
        return ()
    t = cfg.scale(scale or cfg.scales[-1].name).training
    return tuple(int(e) for e in training_lengths(t.epochs, n, t.chunk_epochs))
