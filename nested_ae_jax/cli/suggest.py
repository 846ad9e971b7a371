"""``nested-ae suggest RUN --pool CANDIDATES.csv --maximize SCALE.HEAD --out next.csv``: the
next candidates to measure (``bo.suggest``)."""

from __future__ import annotations

from .objective import add_objective_options, objectives_of
from .progress import add_stage_option


def add_parser(sub):
    p = sub.add_parser(
        "suggest", help="Bayesian optimisation: which candidates to measure next",
        description="Rank candidates by an acquisition function (expected improvement, UCB or "
        "Thompson sampling) of a surrogate fitted to the run's training rows (the measured "
        "set): a GP on the chain's latents or raw inputs, or the run's own models' mean and "
        "spread. Candidates: the rows of --pool, or (without --pool) compositions and device "
        "choices optimised by gradients through the chain.")
    p.add_argument("run_dir", help="run directory written by 'train'")
    p.add_argument("--pool", help="CSV of candidates with the scale's raw columns (as for "
                   "'predict'); without it, the design variables of 'design'")
    add_objective_options(p, several=False)
    p.add_argument("--batch", type=int, default=1, metavar="Q",
                   help="candidates to choose (default 1)")
    p.add_argument("--acquisition", default="ei", choices=("ei", "ucb", "ts"),
                   help="ei (default), ucb, or ts (Thompson sampling; with --pool and a GP)")
    p.add_argument("--beta", type=float, default=2.0, help="UCB: mean + sqrt(beta) std")
    p.add_argument("--space", default="latent", choices=("latent", "raw", "ensemble", "auto"),
                   help="GP on the chain's latents (default) or raw inputs, or the run's "
                   "models' mean and spread; auto: the GP space that did better in simulated "
                   "campaigns on the run's own data (printed)")
    p.add_argument("--auto-trials", type=int, default=20, metavar="N",
                   help="--space auto: simulated campaigns per space (default 20)")
    p.add_argument("--auto-epochs", type=int, metavar="N",
                   help="--space auto: epochs of the honest chain of the latent GP's campaigns "
                   "(default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--starts", type=int, default=256, help="without --pool: parallel starts")
    p.add_argument("--steps", type=int, default=200, help="without --pool: Adam steps")
    p.add_argument("--exclude", action="append", default=[], metavar="ION",
                   help="without --pool: ion or device choice never used (repeatable)")
    p.add_argument("--fix", action="append", default=[], metavar="SITE=ION",
                   help="without --pool: pure site or fixed device choice")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="without --pool: bound on a head, e.g. 'atomic.gap>=1.2'")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--top", type=int, default=10, metavar="N", help="rows to print")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_stage_option(p)
    return p


def run(args) -> int:
    from .. import io
    from ..bo.suggestions import suggest
    from ..data import read_table
    from .progress import load_chain, printer, say_stage

    trained = load_chain(args)
    pool = read_table(args.pool) if args.pool else None
    [objective] = objectives_of(args)
    table = suggest(trained, objective, pool, batch=args.batch,
                    acquisition=args.acquisition, space=args.space, beta=args.beta,
                    seed=args.seed, starts=args.starts, steps=args.steps,
                    exclude=args.exclude, fix=args.fix or None, constraints=args.constraint,
                    source=str(args.pool), auto_trials=args.auto_trials,
                    auto_epochs=args.auto_epochs, progress=printer(args.quiet))
    info = table.attrs["suggest"]
    for row in info.get("space_evidence", []):      # --space auto: the evidence, on stdout
        print(f"--space auto: {row['method']}: mean share {row['mean %']:.1f} %, median "
              f"{row['median %']:.1f} % over {row['trials']} simulated campaigns")
    shown = [c for c in table.columns if c in ("rank", "pick", "formula", "pool_row")]
    shown += [c for c in ("acquisition", "mean", "std", "measured", "feasible", "chosen")
              if c in table.columns]
    print(table[shown].head(args.top).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{int(table['chosen'].sum())} chosen of {len(table)} candidates ({info['space']} "
          f"space, {info['acquisition']}, {info['measured']} measured; {info['seconds']:.1f} s)")
    io.atomic_write_csv(args.out, table)
    print(f"wrote {args.out}")
    say_stage(trained)
    return 0
