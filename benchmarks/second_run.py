#!/usr/bin/env python
"""A whole ``nested-ae train`` command run twice against one empty compilation cache: the
first run compiles and fills the cache, the second reads it. Per run: the command's wall time
(process start to exit: import, reading, the fit, the run directory's tables and figures) and
the fit's own ``wall_seconds`` from metrics.json; then the second run's wall / fit ratio
(issue 20's target: <= 1.25x) and its overhead (wall - fit: imports, reading, writing).

Prints one JSON line per run, then the ratio line. Usage::

    python benchmarks/second_run.py                                   # the paper's AE1
    python benchmarks/second_run.py CONFIG --set atomic.training.epochs=20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(config: str, extra: list[str], out: Path, cache: str) -> dict:
    env = {**os.environ, "NESTED_AE_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nested_ae_jax.cli", "train", config, *extra,
                    "--quiet", "--out", str(out)], check=True, env=env)
    wall = time.perf_counter() - start
    fit = json.loads((out / "metrics.json").read_text())["wall_seconds"]
    return {"wall_s": round(wall, 2), "fit_s": round(float(fit), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", default="experiments/perovskite/ae1_bandgap.toml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    extra = [w for s in args.set for w in ("--set", s)]
    with tempfile.TemporaryDirectory(prefix="second_run_") as work:
        cache = os.path.join(work, "cache")
        runs = []
        for run in (1, 2):
            runs.append(run_once(args.config, extra, Path(work) / f"run{run}", cache))
            print(json.dumps({"run": run, **runs[-1]}), flush=True)
    second = runs[1]
    print(json.dumps({"run": "ratio", "second_wall_over_fit":
                      round(second["wall_s"] / second["fit_s"], 3),
                      "second_overhead_s": round(second["wall_s"] - second["fit_s"], 2)}),
          flush=True)


if __name__ == "__main__":
    main()
