"""``nested-ae campaign CONFIG --maximize SCALE.HEAD --out DIR``: simulated Bayesian
optimisation campaigns on a data set whose targets are known (``bo.simulate``)."""

from __future__ import annotations

from .objective import add_objective_options, objectives_of


def add_parser(sub):
    p = sub.add_parser(
        "campaign", help="simulated Bayesian-optimisation campaigns: share of the candidate "
        "pool measured before its best is found (latent GP retrained / blind, raw GP, "
        "ensemble, random)",
        description="Simulated pool-based campaigns on a config's data: the pool is the "
        "distinct candidates of the objective's scale (identical inputs merged, targets "
        "averaged); each trial starts from random picks and reveals the chosen candidates "
        "round by round until the pool's best is found. Writes campaign.csv, summary.md, "
        "campaign_box.png and pool.csv.")
    p.add_argument("config", help="TOML config file")
    add_objective_options(p, several=False)
    p.add_argument("--trials", type=int, default=200, help="campaigns per method (default 200)")
    p.add_argument("--init", type=int, default=5, help="random initial picks (default 5)")
    p.add_argument("--batch", type=int, default=1, metavar="Q",
                   help="candidates chosen per round (default 1)")
    p.add_argument("--methods", default="retrained,latent,raw,ensemble,random",
                   help="comma list of retrained (latent GP whose objective scale is "
                   "retrained on the revealed rows), latent, raw, ensemble, random (default: "
                   "these five), hybrid (the raw descriptors beside the retrained latents, "
                   "one ARD GP) and leaky (a GP on the latents of a chain trained on every "
                   "candidate's target: what that leak is worth, not a method)")
    p.add_argument("--acquisition", default="ei", choices=("ei", "ucb", "ts"),
                   help="of the GP methods (default ei; the ensemble uses ucb with ts)")
    p.add_argument("--epochs", type=int, help="train the honest latent chain this many "
                   "epochs per scale (default: the config's)")
    p.add_argument("--relearn-every", type=int, default=10, metavar="R",
                   help="retrained: refit the objective scale every R rounds (default 10)")
    p.add_argument("--relearn-epochs", type=int, default=50,
                   help="retrained: full-batch epochs (Adam steps) of each refit (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial picks (default 0)")
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA, "
                   "else the config's folder)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting first (repeatable)")
    p.add_argument("--out", required=True, help="folder for the report files")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    import time

    from ..bo.report import summary_table
    from ..bo.report import results_frame
    from ..bo.simulation import simulate
    from ..config import load_config
    from .progress import printer, settings, trained_stage_note

    start = time.perf_counter()
    cfg = settings(load_config(args.config), args)
    [objective] = objectives_of(args)
    sim = simulate(cfg, objective, trials=args.trials, init=args.init, batch=args.batch,
                   methods=args.methods, acquisition=args.acquisition, epochs=args.epochs,
                   seed=args.seed, relearn_every=args.relearn_every,
                   relearn_epochs=args.relearn_epochs, data_root=args.data_root, out=args.out,
                   progress=printer(args.quiet))
    table = summary_table(results_frame(sim.results))
    table["wall s"] = [sim.seconds[m] for m in table["method"]]
    print(f"{sim.context['objective']}; {sim.context['pool']}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"wall time {time.perf_counter() - start:.1f} s; wrote "
          + ", ".join(str(p) for p in sim.paths.values()))
    trained_stage_note("campaign", cfg)
    return 0
