"""``nested-ae design RUN --maximize device.pce ...``: inverse design through a trained
chain, printed and written as a ranked candidate table."""

from __future__ import annotations

from pathlib import Path

from .objective import add_objective_options, objectives_of
from .progress import add_stage_option, load_chain, say_stage


def add_parser(sub):
    p = sub.add_parser(
        "design", help="gradient-based inverse design of compositions and device choices",
        description="Optimise site fractions (and enumerate the device choices) through a "
        "trained chain; print and write a ranked candidate table.")
    p.add_argument("run_dir", help="run directory written by 'train'")
    add_objective_options(p, several=True)
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="bound on a head: 'atomic.gap>=1.2', 'atomic.gap<=1.6', "
                   "'1.2<=atomic.gap<=1.6' (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="ION",
                   help="ion (or device choice) never used, e.g. Pb (repeatable, or comma list)")
    p.add_argument("--fix", action="append", default=[], metavar="SITE=ION",
                   help="pure site, e.g. X=I; or COLUMN=CHOICE for a device choice")
    p.add_argument("--max-ions-per-site", type=int, default=None, metavar="N",
                   help="at most N ions mixed on each site")
    p.add_argument("--starts", type=int, default=1024, help="parallel starts (default 1024)")
    p.add_argument("--steps", type=int, default=500, help="Adam steps (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="CSV of all unique candidates, ranked")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="rows to print (default 10)")
    p.add_argument("--pareto", nargs=2, metavar=("X", "Y"),
                   help="also a Pareto front of two heads ('min:atomic.gap' 'max:device.pce'),"
                   " written next to --out as *_pareto.csv/.png")
    add_stage_option(p)
    return p


def run(args) -> int:
    from .. import io
    from ..design import (Designer, design, direction, format_table, parse_constraint,
                          pareto_front, write_pareto)

    objectives = objectives_of(args)
    constraints = [parse_constraint(s) for s in args.constraint]
    chain = load_chain(args)
    d = Designer(chain)
    table = design(d, objectives, constraints, args.exclude, fix=args.fix or None,
                   max_ions_per_site=args.max_ions_per_site, starts=args.starts,
                   steps=args.steps, seed=args.seed)
    info = table.attrs["design"]
    print(format_table(d, table, args.top))
    n_feas = int(table["feasible"].sum())
    print(f"{len(table)} unique candidates ({n_feas} feasible) from {args.starts} starts x "
          f"{args.steps} steps over {info['combos']} device combinations; compile "
          f"{info['compile_s']:.1f} s, optimise {info['run_s']:.1f} s")
    if args.out:
        io.atomic_write_csv(args.out, table)
        print(f"wrote {args.out}")
    if args.pareto:
        front, cands = pareto_front(d, args.pareto[0], args.pareto[1], constraints,
                                    args.exclude, fix=args.fix or None,
                                    max_ions_per_site=args.max_ions_per_site,
                                    starts=args.starts, steps=args.steps, seed=args.seed)
        stem = Path(args.out).with_suffix("") if args.out else Path("candidates")
        hx, hy = direction(args.pareto[0])[1], direction(args.pareto[1])[1]
        csv, png = write_pareto(front, cands, hx, hy, f"{stem}_pareto")
        print(f"Pareto front of {hy} vs {hx}: {len(front)} points; wrote {csv} and {png}")
    say_stage(chain)
    return 0
