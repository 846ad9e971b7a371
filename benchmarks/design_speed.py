#!/usr/bin/env python
"""Inverse design through the perovskite chain: speed, and gradient vs random vs latent sampling.

Task (issue 5): maximise device.pce with 1.2 <= atomic.gap <= 1.6 eV and no lead. Timed:
``--starts`` x ``--steps`` Adam steps of the vmapped multi-start optimiser (compile reported
apart; a second call reuses the compiled program). Compared at equal model evaluations
(starts x steps; a gradient step = one forward + backward pass, a random or latent sample = one
forward pass):

* gradient: :func:`nested_ae_jax.design.design`;
* random: random compositions (per site a random number of allowed ions, Dirichlet(1)
  fractions) and device choices;
* latent: the later work's latent-space sampling, uniform in the box of AE1's training latents,
  scored by the heads; its best 1024 decoded to compositions (AE1 decoder + projection onto the
  simplices) and re-evaluated through the chain ("best_latent_predicted_score" is what the
  latent heads promised).

Prints JSON lines, then a Markdown table. Usage::

    python benchmarks/design_speed.py /work/runs/nested_pce
    python benchmarks/design_speed.py RUN --seeds 3 --pareto /tmp/pareto
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

from nested_ae_jax import design as D
from nested_ae_jax.chain import load

OBJECTIVE = "device.pce"
CONSTRAINTS = ["atomic.gap>=1.2", "atomic.gap<=1.6"]
EXCLUDE = ["Pb"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="/work/runs/nested_pce")
    ap.add_argument("--starts", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=1, help="comparison repeated over seeds 0..N-1")
    ap.add_argument("--no-compare", action="store_true", help="timing only")
    ap.add_argument("--pareto", metavar="PREFIX",
                    help="also write the Pareto front of (max gap, max PCE), Pb-free, as "
                    "PREFIX.csv/.png")
    args = ap.parse_args(argv)

    env = {"python": platform.python_version(), "jax": jax.__version__,
           "backend": jax.default_backend(), "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    d = D.Designer(load(args.run_dir))
    setup = time.perf_counter() - t0
    for call in (1, 2):
        t0 = time.perf_counter()
        table = D.design(d, OBJECTIVE, CONSTRAINTS, EXCLUDE, starts=args.starts,
                         steps=args.steps, seed=0)
        wall = time.perf_counter() - t0
        info = table.attrs["design"]
        print(json.dumps({"bench": "design_speed", "call": call, "starts": args.starts,
                          "steps": args.steps, "compile_s": round(info["compile_s"], 3),
                          "optimise_s": round(info["run_s"], 3), "wall_s": round(wall, 3),
                          "setup_s": round(setup, 3), **env}), flush=True)

    rows = []
    if not args.no_compare:
        for seed in range(args.seeds):
            for row in D.compare(d, OBJECTIVE, CONSTRAINTS, EXCLUDE, starts=args.starts,
                                 steps=args.steps, seed=seed):
                row = {"bench": "design_compare", "seed": seed, **row}
                rows.append(row)
                print(json.dumps(row), flush=True)
        print()
        print("| seed | method | evaluations | feasible (unique) | best PCE (%) | gap (eV) | "
              "PCE std | OOD score | top-10 mean | wall (s) | best candidate |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            fmt = (lambda k: "-" if r.get(k) is None else f"{r[k]:.2f}")
            cand = f"{r['best_formula']} / {r.get('ETL_stack_sequence')} / " \
                   f"{r.get('HTL_stack_sequence')}" if r["best_formula"] else "-"
            cand = cand.replace("|", "\\|")  # "C60 | BCP" inside a Markdown cell
            extra = f" (latent heads promised {r['best_latent_predicted_score']:.1f})" \
                if "best_latent_predicted_score" in r else ""
            print(f"| {r['seed']} | {r['method']} | {r['evaluations']} | {r['n_feasible']} | "
                  f"{fmt('best_score')} | {fmt('atomic.gap')} | {fmt('device.pce.std')} | "
                  f"{fmt('ood.score')} | {fmt('top10_mean_score')} | {r['wall_s']:.1f} | "
                  f"{cand}{extra} |")
    if args.pareto:
        front, cands = D.pareto_front(d, "max:atomic.gap", "max:device.pce", [], EXCLUDE,
                                      starts=args.starts, steps=args.steps)
        csv, png = D.write_pareto(front, cands, "atomic.gap", "device.pce", args.pareto)
        print(json.dumps({"bench": "design_pareto", "points": len(front), "csv": str(csv),
                          "png": str(png)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
