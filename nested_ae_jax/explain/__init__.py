"""Interpretability of a trained run: ``nested-ae explain RUN_DIR`` (issue 6).

Writes RUN_DIR/explain/ with CSVs, PNGs, ``summary.json`` and ``index.md`` (every figure
with a one-line caption):

1. latent activity (std and mean |value| of each latent over the rows; inactive flagged),
2. Pearson and adjusted correlation among latents, descriptors and targets per scale,
3. exact Shapley values (:mod:`nested_ae_jax.shapley`) of every input descriptor for every
   regression head and latent, and gradient attributions through the whole chain,
4. a latent-size scan (sizes 1..K and all folds in one compiled program) with its elbow,
5. latent maps (the latent if 2-D, else UMAP if installed, else PCA).

Modules: ``analysis`` (pure numpy pieces), ``attribution`` (Shapley players, chain gradients),
``scan`` (masked-latent training); ``defaults`` (the command's defaults); ``views`` (a scale of
a run on its own rows through its explained model), ``tables`` (a view's tables and named
columns), ``figures`` (activity and bar figures), ``section`` (the ``Section`` record),
``sections`` (the five sections, computed, nothing written), ``writer`` (CSVs, PNGs,
summary.json, index.md), ``run`` (:func:`explain_run`: load, compute the sections, write;
:func:`summary_lines`). This module imports nothing heavy, so registering the CLI subcommand
stays cheap.
"""

from __future__ import annotations

from .defaults import DEFAULT_BACKGROUND, DEFAULT_ROWS


def explain_run(run_dir, out_dir=None, **kwargs) -> dict:
    """Write RUN_DIR/explain/ (or ``out_dir``); see :func:`nested_ae_jax.explain.run.
    explain_run` for the keyword arguments (background, max_rows, seed, progress, scan_sizes,
    scan_epochs, scan_scales, fold, data_root). Returns the summary dict."""
    from .run import explain_run as _explain_run

    return _explain_run(run_dir, out_dir, **kwargs)


def summary_lines(summary: dict) -> list[str]:
    """A few lines for the terminal (see :func:`nested_ae_jax.explain.run.summary_lines`)."""
    from .run import summary_lines as _summary_lines

    return _summary_lines(summary)


__all__ = ["DEFAULT_BACKGROUND", "DEFAULT_ROWS", "explain_run", "summary_lines"]
