#!/usr/bin/env python
"""How a chain's cost grows with its rows, in one run: the embedded demo chain (scale1 ->
scale2, ``nested_ae_jax.demo``: matched folds, 5 folds) on synthetic files of N upstream rows
and N/2 downstream rows sharing the upstream's entities (the downstream file's first half:
its scale1 descriptors are those of upstream rows), written as CSV and read back by the fit.

Every size does about the same number of row-epochs (``--row-epochs`` / N epochs, at least 1),
each in a fresh subprocess, which reports:

- link: reading both files, linking the entities and dealing the matched folds
  (``runner.plan_chain``);
- fit: ``runner.fit_config`` from the files (reading, linking, training both scales,
  latents, evaluation, out-of-fold tables), wall seconds;
- compile: seconds XLA spent compiling inside the fit (``jax.monitoring`` compile events);
- per row-epoch: (fit - compile) / ((N + N/2) x epochs), microseconds;
- peak RSS: the child's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``;

then a Markdown table with the ratios to the smallest size.

Usage: python benchmarks/scale.py [--sizes 1000,10000,100000] [--row-epochs 200000]
Defaults: sizes 1e3, 1e4, 1e5 (add 1000000 for the 1e6 row: about 8 GB and 4 minutes here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(rows: int, epochs: int) -> dict:
    """One size, in this process: the figures of the module docstring."""
    import jax

    from nested_ae_jax import io
    from nested_ae_jax.demo import demo_config
    from nested_ae_jax.runner import fit_config, plan_chain
    from nested_ae_jax.synthetic import make_nested_data

    compile_s = [0.0]
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **_: compile_s.__setitem__(0, compile_s[0] + secs)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        frames = make_nested_data(rows, n_scales=2, seed=0)
        io.atomic_write_csv(d / "scale1.csv", frames["scale1"])
        io.atomic_write_csv(d / "scale2.csv", frames["scale2"].iloc[: rows // 2])
        del frames
        cfg = demo_config(d, epochs=epochs)
        t = time.perf_counter()
        plan = plan_chain(cfg)
        link = time.perf_counter() - t
        shared = int(len(set(plan.entities["scale1"]) & set(plan.entities["scale2"])))
        del plan
        t = time.perf_counter()
        fit = fit_config(cfg)
        wall = time.perf_counter() - t
    row_epochs = (rows + rows // 2) * epochs
    return {"rows": rows, "down_rows": rows // 2, "epochs": epochs, "shared_entities": shared,
            "link_s": round(link, 2), "fit_s": round(wall, 2), "compile_s": round(compile_s[0], 2),
            "us_per_row_epoch": round(1e6 * (wall - compile_s[0]) / row_epochs, 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "val_mae_y2": round(fit.results["scale2"].metrics["heads"]["y2"]["pooled_val"]["mae"],
                                4)}


def table(results: list[dict]) -> str:
    base = results[0]
    lines = ["| upstream rows | downstream rows | epochs | link | fit | compile | per row-epoch "
             "| ratio | peak RSS | ratio |", "|" + "---:|" * 10]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['down_rows']:,} | {r['epochs']} | {r['link_s']:.2f} s "
            f"| {r['fit_s']:.1f} s | {r['compile_s']:.1f} s | {r['us_per_row_epoch']:.2f} us "
            f"| {r['us_per_row_epoch'] / base['us_per_row_epoch']:.2f} "
            f"| {r['peak_rss_gb']:.2f} GB | {r['peak_rss_gb'] / base['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated upstream row counts (downstream: half)")
    parser.add_argument("--row-epochs", type=float, default=2e5,
                        help="upstream rows x epochs of every size (epochs >= 1)")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)), flush=True)
        return
    results = []
    for rows in [int(float(s)) for s in args.sizes.split(",")]:
        epochs = max(1, round(args.row_epochs / rows))
        out = subprocess.run([sys.executable, __file__, "--child", str(rows), str(epochs)],
                             capture_output=True, text=True, env=os.environ)
        if out.returncode:
            sys.exit(f"{rows} rows failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
