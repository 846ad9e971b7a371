"""``explain_run``: every explanation of a trained run, written to RUN_DIR/explain/.

Loads the run, evaluates each scale on its own rows through its explained model
(:mod:`.views`; which model, and why one: see there), computes the five sections
(:mod:`.sections`), writes them (:mod:`.writer`) and returns the summary.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import NestedAEError
from ..chain import TrainedChain, load
from .defaults import DEFAULT_BACKGROUND, DEFAULT_ROWS
from .section import Progress
from .sections import (section_activity, section_attributions, section_correlations,
                       section_maps, section_scan)
from .views import ScaleView, scale_view, scale_views
from .writer import merge_summary, write_sections


def explain_run(run_dir, out_dir=None, *, background: int = DEFAULT_BACKGROUND,
                max_rows: int = DEFAULT_ROWS, seed: int = 0, progress: Progress | None = None,
                scan_sizes: int | None = None, scan_epochs: int | dict | None = None,
                scan_scales: list[str] | None = None, fold: int | None = None,
                data_root: str | None = None) -> dict:
    """Write every explanation of a trained run to ``out_dir`` (default RUN_DIR/explain):
    latent activity, correlation maps, Shapley values, chain gradients, latent-size scans,
    latent maps, ``summary.json`` and ``index.md``. Returns the summary dict.

    background / max_rows: background-set size and number of explained rows of the Shapley
    values (random rows of each scale, ``seed``). scan_sizes: K of the latent-size scan 1..K
    (None: each scale's own latent size; 0: no scan); scan_epochs: its epochs (None:
    min(training epochs, 300); "full": the scale's; a dict {SCALE: epochs} sets them per
    scale); scan_scales: scales to scan (None: all). fold: explain this model of every scale
    instead of the default (see :mod:`nested_ae_jax.explain.views`).
    """
    run = run_dir if isinstance(run_dir, TrainedChain) else load(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "explain"
    out.mkdir(parents=True, exist_ok=True)
    if background < 1 or max_rows < 1:
        raise NestedAEError("--background and --rows must be at least 1")
    started = time.perf_counter()
    views, load_seconds = scale_views(run, fold=fold, data_root=data_root)
    summary: dict = {"run": str(run.path), "stage": run.stage, "seconds": load_seconds,
                     "scales": {name: {"explained_model": view.label,
                                       "n_rows": len(view.data.frame)}
                                for name, view in views.items()}}
    sections = [
        section_activity(views),
        section_correlations(views),
        section_attributions(views, background=background, max_rows=max_rows, seed=seed,
                             progress=progress),
        section_scan(views, sizes=scan_sizes, epochs=scan_epochs, scales=scan_scales,
                     progress=progress),
        section_maps(views, seed=seed),
    ]
    merge_summary(summary, sections)
    files = write_sections(out, sections, index_header(run.path, views, summary), summary,
                           started=started)
    summary["out"] = str(out)
    summary["files"] = files
    return summary


def index_header(path, views: dict[str, ScaleView], summary: dict) -> list[str]:
    """The first lines of index.md: title, which model explains each scale, and per scale its
    inactive latents, latents with |r| >= 0.5 to a target and scan elbows.

    Args: path: the run's folder; summary: the merged summary (scales, scan).
    Returns: markdown lines.
    """
    header = [f"# Explanations of `{path}`", "",
              "Written by `nested-ae explain`. Scales are explained through one trained model "
              "each: " + ", ".join(f"{n}: {v.label}" for n, v in views.items()) + ". Key "
              "numbers are in [`summary.json`](summary.json)."]
    for name in views:
        s = summary["scales"][name]
        bits = [f"inactive latents: {', '.join(s['inactive_latents']) or 'none'}"]
        for tgt, rs in s.get("latent_r", {}).items():
            strong = [f"{k} ({v:+.2f})" for k, v in sorted(rs.items(), key=lambda t: -abs(
                t[1] if t[1] == t[1] else 0)) if v == v and abs(v) >= 0.5]
            bits.append(f"latents with |r| >= 0.5 to {tgt}: {', '.join(strong) or 'none'}")
        if name in summary["scan"]:
            bits.append("scan elbows: " + ", ".join(
                f"{k} {v}" for k, v in summary["scan"][name]["elbow"].items()))
        header.append(f"- **{name}**: " + "; ".join(bits))
    return header


def summary_lines(summary: dict) -> list[str]:
    """A few lines for the terminal: per scale its explained model, inactive latents, top
    |r| with each target and scan elbows; then the wall time and the index path.

    Args: summary: what :func:`explain_run` returned.
    Returns: the lines (no newlines).
    """
    lines = []
    for name, s in summary["scales"].items():
        lines.append(f"{name} ({s['explained_model']}): inactive latents "
                     f"{', '.join(s['inactive_latents']) or 'none'}")
        for tgt, rs in s.get("latent_r", {}).items():
            top = sorted(((k, v) for k, v in rs.items() if v == v), key=lambda t: -abs(t[1]))
            lines.append(f"  |r| with {tgt}: " + ", ".join(f"{k} {v:+.2f}" for k, v in top[:4]))
        if name in summary.get("scan", {}):
            lines.append("  scan elbow: " + ", ".join(
                f"{k} {v}" for k, v in summary["scan"][name]["elbow"].items()))
    lines.append(f"wall time {summary['seconds']['total']:.1f} s; wrote {summary['out']}/index.md")
    return lines


__all__ = ["explain_run", "index_header", "scale_view", "ScaleView", "summary_lines"]
