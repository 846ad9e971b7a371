"""``nested-ae explain RUN``: latent activity, correlations, Shapley values, gradients,
latent-size scan, latent maps (writes RUN/explain/)."""

from __future__ import annotations

from ..explain import DEFAULT_BACKGROUND, DEFAULT_ROWS
from .progress import add_stage_option, load_chain, printer, say_stage


def add_parser(sub):
    p = sub.add_parser(
        "explain", help="interpretability of a trained run: latent activity, correlations, "
        "Shapley values, gradients, latent-size scan, latent maps (writes RUN_DIR/explain)")
    p.add_argument("run_dir", help="run directory written by 'train'")
    p.add_argument("--out", help="folder to write (default RUN_DIR/explain)")
    p.add_argument("--background", type=int, default=DEFAULT_BACKGROUND,
                   help=f"Shapley background rows per scale (default {DEFAULT_BACKGROUND})")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                   help=f"rows explained by Shapley values per scale (default {DEFAULT_ROWS})")
    p.add_argument("--scan-sizes", type=int, default=None, metavar="K",
                   help="latent-size scan over 1..K (default: each scale's latent size; "
                   "0: no scan)")
    p.add_argument("--scan-epochs", type=int, default=None,
                   help="epochs of the scan (default: min(the scale's training epochs, 300), "
                   "enough to rank the sizes; --full-scan for the training epochs)")
    p.add_argument("--full-scan", action="store_true",
                   help="scan with each scale's full training epochs (slow: the paper's "
                   "1500 epochs per size and fold)")
    p.add_argument("--scan-scales", nargs="+", default=None, metavar="SCALE",
                   help="scales to scan (default: all)")
    p.add_argument("--fold", type=int, default=None,
                   help="explain this model of every scale (default: the model feeding "
                   "downstream, chain.feed_fold)")
    p.add_argument("--data-root", help="folder for relative data paths")
    p.add_argument("--seed", type=int, default=0, help="seed of row sampling (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_stage_option(p)
    return p


def run(args) -> int:
    from ..explain import explain_run, summary_lines

    chain = load_chain(args)
    summary = explain_run(chain, args.out, background=args.background,
                          max_rows=args.rows, seed=args.seed, progress=printer(args.quiet),
                          scan_sizes=args.scan_sizes, scan_epochs="full" if args.full_scan else args.scan_epochs,
                          scan_scales=args.scan_scales, fold=args.fold,
                          data_root=args.data_root)
    print("\n".join(summary_lines(summary)))
    say_stage(chain)
    return 0
