"""``nested-ae tune CONFIG --out DIR``: choose a scale's settings by nested cross-validation
with successive halving (``nested_ae_jax.tune``)."""

from __future__ import annotations

import sys

from .progress import printer, settings


def add_parser(sub):
    p = sub.add_parser("tune", help="choose a scale's settings by nested cross-validation "
                       "(quasi-random search, successive halving)")
    p.add_argument("config", help="TOML config file")
    p.add_argument("--out", required=True,
                   help="folder for tune.json, tuned.toml, trials.csv, tune.png")
    p.add_argument("--scale", help="scale to tune (default: the last; upstream scales are "
                   "taken as configured)")
    p.add_argument("--trials", type=int, default=16, help="settings sampled (default 16)")
    p.add_argument("--eta", type=int, default=3, help="each rung keeps 1/eta of the "
                   "settings per race and trains eta times longer (default 3)")
    p.add_argument("--rungs", type=int, help="rungs of successive halving (default "
                   "1 + floor(log_eta(trials)))")
    p.add_argument("--budget-minutes", type=float, metavar="M", help="end within about M "
                   "minutes: after each rung the rest is projected from the time so far and "
                   "fewer settings continue if it would not fit (the last rung always runs)")
    p.add_argument("--ensemble", type=int, default=1, metavar="K", dest="tune_ensemble",
                   help="also score the mean prediction of the K best settings: each race "
                   "keeps at least K settings, each outer split averages its K best by its "
                   "inner folds (tune.json: ensemble; tuned.toml stays the single best; "
                   "default 1; not train's --ensemble, which trains seeds)")
    p.add_argument("--lengths", type=int, default=4, metavar="N",
                   help="training lengths scored at the last rung from the same run: the "
                   "configured epochs x 1/N, 2/N, ..., 1 (rounded to whole chunks), chosen "
                   "with the setting on the inner folds (default 4; 1: the configured epochs)")
    p.add_argument("--outer-folds", type=int, default=5, metavar="K",
                   help="outer splits of nested cross-validation (default 5)")
    p.add_argument("--space", help="TOML search space ([dims.\"KEY\"] tables; default: "
                   "docs/sweeps-and-tuning.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Sobol sampling")
    p.add_argument("--metric", help="pooled validation metric, e.g. gap.mae (default: first "
                   "regression head's MAE)")
    p.add_argument("--data-root", help="folder for relative data paths")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting before tuning (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    from ..config import load_config
    from ..tune import load_space, summary, tune, write_outputs
    from .train import leak_warnings

    cfg = settings(load_config(args.config), args)
    space = load_space(args.space) if args.space else None
    result = tune(cfg, scale=args.scale, trials=args.trials, eta=args.eta, rungs=args.rungs,
                  outer_folds=args.outer_folds, space=space, seed=args.seed,
                  metric=args.metric, data_root=args.data_root, progress=printer(args.quiet),
                  budget_minutes=args.budget_minutes, ensemble=args.tune_ensemble,
                  lengths=args.lengths)
    paths = write_outputs(result, args.out, args.data_root)
    n = result.nested
    print(f"tuned scale '{result.scale}': {len(result.settings)} settings, "
          f"{len(result.rungs)} rung(s), {result.n_models} models, {result.seconds:.1f} s")
    print(f"nested CV ({n['outer_folds']} outer x {n['inner_folds']} inner folds): "
          f"{result.metric} {n['outer']:.4g} on the outer validation rows (inner estimate "
          f"{n['inner']:.4g})")
    if result.ensemble:
        e = result.ensemble
        short = sorted({len(c) for c in e.chosen if len(c) < e.k})
        fewer = f"; {', '.join(map(str, short))} where members diverged" if short else ""
        print(f"ensemble of {e.k} (mean prediction of each outer split's {e.k} best by "
              f"its inner folds{fewer}): {result.metric} {e.nested['outer']:.4g} on the same outer "
              f"validation rows (single setting {n['outer']:.4g}); final ensemble: settings "
              + ", ".join(f"{int(i)} ({int(m)} epochs)" for i, m in zip(e.final, e.final_epochs)))
    print("every head, same outer models: " + "; ".join(
        f"{head} " + ", ".join(f"{stat} {f['outer']:.4g}" for stat, f in stats.items())
        for head, stats in summary(result)["heads"].items()))
    print(f"final setting (chosen on all rows, plain-fold CV {result.final_cv:.4g}): "
          + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                      for k, v in {**result.settings[result.final],
                                   "training.epochs": result.final_epochs}.items()))
    if result.budget:
        b = result.budget
        print(f"budget {b['minutes']:g} min: spent {b['spent_s']:.1f} s"
              + ("" if b["within"] else ", over the budget")
              + (f"; projected after rung 1: {b['projected_s']:.1f} s"
                 if b["projected_s"] is not None else "")
              + (f"; cut {len(b['reduced'])} time(s), see tune.json" if b["reduced"] else ""))
    for line in leak_warnings(result.last.chain):
        print(line, file=sys.stderr)
    print("wrote " + ", ".join(map(str, paths)))
    return 0
