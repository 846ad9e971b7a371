#!/usr/bin/env python
"""Simulated Bayesian-optimisation campaigns (issue 15): wall time of ``--trials`` campaigns of
each method on a synthetic pool (default 350 candidates x 20 features), compile included
(first call in a fresh process) and excluded (the same call again: every program is cached),
with the share of the pool each method explored before finding the best.

The pool: x ~ N(0, I_d); y = sin(x w / sqrt d) + 0.5 x0 - 0.3 x1^2 (smooth, one best
candidate). The "ensemble" method gets fixed per-candidate predictions standing in for fold
models: mean = y + N(0, 0.3^2), std = 0.3; "ensemble-mlp" is the deep ensemble retrained on
the revealed rows every round (``bo.mlp_ensemble``, what ``nested-ae campaign`` runs).

Prints one JSON line per method, then a Markdown table. Target (issue 15): 200 campaigns of
one method on a few hundred candidates in <= 2 min on the 2-core CPU. Usage::

    python benchmarks/campaign_speed.py                       # all methods, ~3-4 min
    python benchmarks/campaign_speed.py --methods gp-ei,random --trials 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

METHODS = ("random", "ensemble", "ensemble-mlp", "gp-ei", "gp-ucb", "gp-ts")


def synthetic_pool(pool: int, dim: int, seed: int = 0):
    """(features (P, d), targets (P,), ensemble mean (P,), ensemble std (P,))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(pool, dim)).astype(np.float32)
    w = rng.normal(size=dim)
    y = np.sin(x @ w / np.sqrt(dim)) + 0.5 * x[:, 0] - 0.3 * x[:, 1] ** 2
    mean = y + 0.3 * rng.normal(size=pool)
    return x, y.astype(np.float32), mean.astype(np.float32), np.full(pool, 0.3, np.float32)


def method_of(name: str):
    from nested_ae_jax import bo

    if name == "random":
        return bo.random_method()
    if name.startswith("ensemble"):
        return bo.ensemble_method("ucb")
    return bo.gp_method(name.split("-", 1)[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--pool", type=int, default=350)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--init", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import jax

    from nested_ae_jax import bo

    x, y, mean, std = synthetic_pool(args.pool, args.dim, args.seed)
    rows = []
    for name in args.methods.split(","):
        method = method_of(name)
        surrogate = {"ensemble": (mean, std), "ensemble-mlp": bo.mlp_ensemble(x)}.get(name)
        kwargs = dict(features=x, surrogate=surrogate,
                      trials=args.trials, init=args.init, batch=args.batch, seed=args.seed)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            result = bo.run_campaign(method, y, **kwargs)
            times.append(time.perf_counter() - start)
        share = result.share[result.found]
        row = {
            "method": name, "trials": args.trials, "pool": args.pool, "dim": args.dim,
            "batch": args.batch, "first_call_s": round(times[0], 2),
            "compiled_s": round(times[1], 2), "found": int(result.found.sum()),
            "share_mean": round(float(share.mean()), 4),
            "share_median": round(float(np.median(share)), 4),
            "rounds_max": int(result.rounds.max()),
            "jax": jax.__version__, "python": platform.python_version(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"{args.trials} campaigns per method, pool {args.pool} x {args.dim}, init {args.init}, "
          f"batch {args.batch} (target: <= 120 s with compile)")
    print()
    print("| method | first call (compile incl.) | compiled | share mean | share median |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['first_call_s']} s | {r['compiled_s']} s | "
              f"{100 * r['share_mean']:.1f} % | {100 * r['share_median']:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
