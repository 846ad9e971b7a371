"""The ``nested-ae`` command line: demo, train, predict.

Errors caused by input (config, data, run directory) print one line ``error: ...`` and exit
with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import NestedAEError


def _progress(quiet: bool):
    if quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def metrics_table(doc: dict, config=None) -> str:
    """Pooled out-of-fold metrics of every head, with the config's reference figures."""
    refs = {}
    if config is not None:
        refs = {(s.name, h.name): dict(h.reference) for s in config.scales for h in s.heads}
    lines = [f"{'scale.head':28s} {'metric':14s} {'ours':>10s} {'reference':>10s}  fold range"]
    for scale, entry in doc["scales"].items():
        for head, m in entry["heads"].items():
            pooled = m.get("pooled_val") or m.get("pooled_train_mean") or {}
            where = "" if "pooled_val" in m else " (train)"
            for key in ("mae", "rmse", "r2", "accuracy", "cross_entropy"):
                if key not in pooled:
                    continue
                ref = refs.get((scale, head), {}).get(key)
                folds = [f["val"][head][key] for f in entry["folds"] if head in f["val"]]
                span = f"{min(folds):.4g}-{max(folds):.4g}" if folds else ""
                lines.append(f"{scale + '.' + head:28s} {key + where:14s} {pooled[key]:10.4f} "
                             f"{'' if ref is None else f'{ref:.4g}':>10s}  {span}")
    return "\n".join(lines)


def _train(args, cfg, out: Path) -> int:
    from . import rundir
    from .runner import fit_config

    progress = _progress(args.quiet)
    out = rundir.prepare_out_dir(out, overwrite=args.overwrite, resume=args.resume)
    resolved = rundir.resolved_config(cfg, args.data_root)
    resume = rundir.resume_states(out, resolved) if args.resume else None
    if resume and progress:
        progress("resuming: " + ", ".join(f"{k} at epoch {int(v[0].epoch.max())}"
                                          for k, v in resume.items()))
    start = time.perf_counter()
    fit = fit_config(resolved, data_root=args.data_root, progress=progress,
                     on_chunk=rundir.periodic_saver(out, resolved), resume=resume)
    fit.seconds = time.perf_counter() - start
    rundir.write_run(fit, out, args.data_root)
    doc = rundir.metrics_document(fit)
    print(metrics_table(doc, cfg))
    print(f"wall time {fit.seconds:.1f} s; run directory {out}")
    return 0


def cmd_train(args) -> int:
    from .config import load_config

    return _train(args, load_config(args.config), Path(args.out))


def cmd_demo(args) -> int:
    from .demo import demo_config, write_demo_data

    out = Path(args.out)
    data_dir = out.resolve() / "data"
    from . import rundir
    rundir.prepare_out_dir(out, overwrite=args.overwrite)
    write_demo_data(data_dir, rows=args.rows, noise=args.noise, seed=args.seed)
    cfg = demo_config(data_dir, epochs=args.epochs, seed=args.seed)
    print(f"demo: two-scale nested autoencoder on {args.rows} synthetic rows "
          f"(noise {args.noise}), 5-fold CV, {args.epochs} epochs", file=sys.stderr)
    args.overwrite, args.resume, args.data_root = True, False, None
    return _train(args, cfg, out)


def cmd_predict(args) -> int:
    from . import io
    from .data import read_table
    from .predict import predict_frame
    from .rundir import load_run

    run = load_run(args.run_dir)
    frame = read_table(args.data)
    table = predict_frame(run, frame, scale=args.scale, fold=args.fold, source=str(args.data))
    if not args.no_inputs:
        table = frame.join(table, rsuffix=" (predicted)")
    io.atomic_write_csv(args.out, table)
    print(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.out}")
    return 0


def cmd_keys(args) -> int:
    from .config import key_reference

    print(key_reference())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nested-ae", description="Nested supervised autoencoders (NestedAE) in JAX: "
        "multi-scale materials property prediction.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def common_train(p):
        p.add_argument("--out", required=True, help="run directory to write")
        p.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --out")
        p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("demo", help="train a two-scale chain on synthetic data (no files)")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--rows", type=int, default=600, help="synthetic rows (default 600)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="Gaussian noise on descriptors, fraction of each column's std")
    p.add_argument("--epochs", type=int, default=300, help="epochs per scale (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="cross-validate the scales of a TOML config")
    p.add_argument("config", help="TOML config file")
    common_train(p)
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA, "
                   "else the config's folder)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run in --out from its last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="apply a trained run to new rows")
    p.add_argument("run_dir", help="run directory written by 'train'")
    p.add_argument("--data", required=True, help="CSV with the target scale's raw columns")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--scale", help="target scale (default: the last)")
    p.add_argument("--fold", type=int, help="use one fold's model (default: mean of folds, "
                   "with a .std column); also writes that model's latents")
    p.add_argument("--no-inputs", action="store_true",
                   help="write only the prediction columns")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("keys", help="print every config key (type, default, meaning)")
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NestedAEError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
