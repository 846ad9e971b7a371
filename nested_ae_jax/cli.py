"""The ``nested-ae`` command line: demo, train, predict, sweep, design, explain, compare, keys.

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


def _settings(cfg, args):
    """The config with --set KEY=VALUE and --ensemble N applied (validated again)."""
    from .config import override, parse_value

    settings = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            from .errors import ConfigError
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. atomic.training.epochs=100")
        settings[key.strip()] = parse_value(value.strip())
    if getattr(args, "ensemble", None):
        settings.update({f"{s.name}.training.ensemble": args.ensemble for s in cfg.scales})
    return override(cfg, settings) if settings else cfg


def cmd_train(args) -> int:
    from .config import load_config

    return _train(args, _settings(load_config(args.config), args), Path(args.out))


def _init_distributed(args) -> None:
    if args.coordinator:
        import jax
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)


def cmd_sweep(args) -> int:
    import json

    import jax

    from . import io
    from .config import load_config
    from .sweep import parse_grid, sweep

    _init_distributed(args)
    cfg = _settings(load_config(args.config), args)
    grid = parse_grid(args.grid or [])
    result = sweep(cfg, grid, scale=args.scale, seeds=args.seeds,
                   data_root=args.data_root, progress=_progress(args.quiet), metric=args.metric)
    if jax.process_index() == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        io.atomic_write_csv(out / "sweep_runs.csv", result.runs)
        io.atomic_write_csv(out / "sweep_folds.csv", result.folds)
        io.atomic_write_json(out / "best.json", {"metric": result.metric, **result.best})
        ascending = not result.metric.endswith((".r2", ".accuracy"))
        shown = result.runs.sort_values(result.metric, ascending=ascending).head(args.top)
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"{len(result.runs)} combinations x folds = {result.n_models} models in "
              f"{result.n_groups} compiled group(s), {result.seconds:.1f} s on "
              f"{jax.device_count()} device(s); best by {result.metric}: "
              + json.dumps({k: result.best[k] for k in [*grid, "training.seed",
                                                         result.metric] if k in result.best}))
        print(f"wrote {out / 'sweep_runs.csv'}, {out / 'sweep_folds.csv'}, {out / 'best.json'}")
    return 0


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
        overlap = table.columns.intersection(frame.columns)
        table = frame.join(table.rename(columns={c: f"{c} (predicted)" for c in overlap}))
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
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting, e.g. atomic.training.epochs=100 (repeatable)")
    p.add_argument("--ensemble", type=int, help="models per fold (seeds seed..seed+N-1) in "
                   "every scale; predictions are their mean")
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--top", type=int, default=10, help="rows of the table to print")
    p.add_argument("--data-root", help="folder for relative data paths")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting before sweeping (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--coordinator", help="multi-host: address HOST:PORT of process 0 "
                   "(jax.distributed.initialize)")
    p.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    p.add_argument("--process-id", type=int, help="multi-host: this process's index")
    p.set_defaults(func=cmd_sweep)

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

    from .design import add_cli as add_design_cli
    from .explain import add_cli as add_explain_cli
    from .compare import add_cli as add_compare_cli
    add_design_cli(sub)
    add_explain_cli(sub)
    add_compare_cli(sub)
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
