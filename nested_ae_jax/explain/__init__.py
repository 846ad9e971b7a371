"""Interpretability of a trained run: ``nested-ae explain RUN_DIR`` (issue 6).

Writes RUN_DIR/explain/ with CSVs, PNGs, ``summary.json`` and ``index.md`` (every figure
with a one-line caption):

1. latent activity and sparsity (encoder-weight L1 and std per latent; inactive flagged),
2. Pearson and adjusted correlation among latents, descriptors and targets per scale,
3. exact Shapley values (:mod:`nested_ae_jax.shapley`) of every input descriptor for every
   regression head and latent, and gradient attributions through the whole chain,
4. a latent-size scan (sizes 1..K and all folds in one compiled program) with its elbow,
5. latent maps (the latent if 2-D, else UMAP if installed, else PCA).

Modules: ``analysis`` (pure numpy pieces), ``attribution`` (Shapley players, chain gradients),
``scan`` (masked-latent training), ``run`` (:func:`explain_run`, files and figures). This
module imports nothing heavy, so registering the CLI subcommand stays cheap.
"""

from __future__ import annotations

import sys

DEFAULT_BACKGROUND = 32
DEFAULT_ROWS = 64


def explain_run(run_dir, out_dir=None, **kwargs) -> dict:
    """Write RUN_DIR/explain/ (or ``out_dir``); see :func:`nested_ae_jax.explain.run.
    explain_run` for the keyword arguments (background, max_rows, seed, progress, scan_sizes,
    scan_epochs, scan_scales, fold, data_root). Returns the summary dict."""
    from .run import explain_run as _explain_run

    return _explain_run(run_dir, out_dir, **kwargs)


def cmd_explain(args) -> int:
    """The ``explain`` subcommand."""
    from .run import explain_run as _explain_run, summary_lines

    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    summary = _explain_run(args.run_dir, args.out, background=args.background,
                           max_rows=args.rows, seed=args.seed, progress=progress,
                           scan_sizes=args.scan_sizes, scan_epochs=args.scan_epochs,
                           scan_scales=args.scan_scales, fold=args.fold,
                           data_root=args.data_root)
    print("\n".join(summary_lines(summary)))
    return 0


def add_cli(subparsers) -> None:
    """Register ``explain`` on the ``nested-ae`` argparse sub-parsers."""
    p = subparsers.add_parser(
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
                   help="epochs of the scan (default: the scale's training epochs)")
    p.add_argument("--scan-scales", nargs="+", default=None, metavar="SCALE",
                   help="scales to scan (default: all)")
    p.add_argument("--fold", type=int, default=None,
                   help="explain this model of every scale (default: the model feeding "
                   "downstream, chain.feed_fold)")
    p.add_argument("--data-root", help="folder for relative data paths")
    p.add_argument("--seed", type=int, default=0, help="seed of row sampling (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_explain)


__all__ = ["DEFAULT_BACKGROUND", "DEFAULT_ROWS", "add_cli", "cmd_explain", "explain_run"]
