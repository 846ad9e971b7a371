#!/usr/bin/env python
"""Training speed of nested_ae_jax on the paper's AE1, held against the floor of one training
step on this machine, in one run. Prints one JSON line per measurement, then a Markdown table
with the previous figures and the targets.

All on the paper's AE1 (15 -> 12 tanh latent, gap head 100 ReLU + dropout 0.1, linear decoder,
L1 0.01, Adam 1e-3, batch 10, 494 rows, KFold(5, shuffle, random_state=0)):

- floor: a minimal program with the same step (M models vmapped, a lax.scan over mini-batch
  steps, Adam, L1, MAE losses, dropout 0.1 from a counter-based hash fused into the step; no
  data pipeline, no evaluation, no bookkeeping), at 5 and 100 models: what XLA can do here.
- loop: the package's training loop (training.train_models via fitting) on the same models,
  compile excluded, and its ratio to the floor.
- ae1_protocol: 5 folds x 1500 epochs through fit_scale, wall time including compile, on the
  devices the process has, and the pooled validation MAE it reaches.
- command: ``nested-ae train experiments/perovskite/ae1_bandgap.toml`` as a whole process
  (import, data, compile, training, evaluation, writing the run directory).
- sweep_100: 20 seeds x 5 folds = 100 models x 1500 epochs, wall time including compile.
- torch_eager (optional): benchmarks/torch_ae1.py, 1 thread, extrapolated.
- ``--scale``: 1,000 and 10,000 AE1 models at once (seeds x 5 folds) for a few epochs,
  model-steps per second (for a GPU; on a CPU pass smaller --scale-models).

Usage: python benchmarks/speed.py [--quick] [--skip-torch] [--scale]
       JAX_NUM_CPU_DEVICES=1 python benchmarks/speed.py   # one device, as the Python API
A/B mode (``--ab``): the AE1 protocol and one throughput figure only, one line ``ab ...``;
``PYTHONPATH=/path/to/other/checkout python benchmarks/speed.py --ab`` times another checkout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nested_ae_jax.config import load_config, override
from nested_ae_jax.data import load_scale_data
from nested_ae_jax.fitting import Replica, data_arrays, model_batch, replica_layout
from nested_ae_jax.model import scale_dims, scale_model
from nested_ae_jax.runner import fit_scale
from nested_ae_jax.splits import make_folds
from nested_ae_jax.sweep import sweep
from nested_ae_jax.training import hyperparameters, init_state, scale_task, train_models

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments/perovskite/ae1_bandgap.toml"
PREVIOUS = {  # benchmarks/README.md, 2026-11-24 (before the pipeline/loop rework)
    "ae1_protocol": "12.3 s", "command": "14.2 s", "sweep_100": "131 s",
    "loop_5": "~37k", "loop_100": "~50k-60k"}


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


# --------------------------------------------------------------------------------------------
# The floor: the step alone


def _hash_uniform(step, shape):
    idx = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    x = idx ^ (step.astype(jnp.uint32) * jnp.uint32(0x9E3779B9))
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = (x ^ (x >> shift)) * jnp.uint32(mult)
    x = x ^ (x >> 16)
    return (x >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def bench_floor(models: int, steps: int = 2000, batch: int = 10) -> dict:
    """The AE1 step, vmapped over ``models``, scanned over ``steps`` (hash dropout)."""
    sizes = [(15, 12), (12, 100), (100, 1), (12, 15)]
    key = jax.random.PRNGKey(0)
    p = ([jax.random.normal(k, (models, a, b)) * 0.1
          for k, (a, b) in zip(jax.random.split(key, 4), sizes)]
         + [jnp.zeros((models, b)) for _, b in sizes])

    def loss(p, x, y, u):
        z = jnp.tanh(x @ p[0] + p[4])
        h = jax.nn.relu(z @ p[1] + p[5])
        h = jnp.where(u >= 0.1, h / 0.9, 0.0)
        g = jax.nn.relu(h @ p[2] + p[6])
        r = z @ p[3] + p[7]
        return jnp.abs(g - y).mean() + jnp.abs(r - x).mean() + 0.01 * jnp.abs(p[0]).sum()

    opt = optax.adam(1e-3)
    state = jax.vmap(opt.init)(p)
    xs = jax.random.normal(key, (steps, models, batch, 15))
    ys = jax.random.normal(key, (steps, models, batch, 1))

    def step(carry, inp):
        p, state = carry
        x, y, i = inp
        u = _hash_uniform(i, (models, batch, 100))
        g = jax.vmap(jax.grad(loss))(p, x, y, u)
        upd, state = jax.vmap(opt.update)(g, state, p)
        return (optax.apply_updates(p, upd), state), None

    run = jax.jit(lambda p, s: jax.lax.scan(step, (p, s), (xs, ys, jnp.arange(steps)))[0])
    jax.block_until_ready(run(p, state))
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        jax.block_until_ready(run(p, state))
        best = min(best, time.perf_counter() - t)
    return emit({"name": "floor", "models": models, "model_steps_per_s": round(steps * models
                                                                              / best)})


# --------------------------------------------------------------------------------------------
# The package


def ae1(epochs: int | None = None):
    cfg = load_config(CONFIG)
    if epochs:
        cfg = override(cfg, {"atomic.training.epochs": epochs})
    spec = cfg.scales[0]
    return cfg, spec, load_scale_data(spec, spec.data)


def bench_loop(n_models: int, epochs: int) -> dict:
    """The training loop on n_models = seeds x 5 folds (compile excluded, best of 3)."""
    cfg, spec, data = ae1(epochs)
    folds = make_folds(spec, data)
    hp = hyperparameters(spec)
    replicas = [Replica(s, hp) for s in range(max(1, n_models // folds.n_models))]
    batch = model_batch(spec, data, replica_layout(spec, folds, replicas))
    task = scale_task(scale_model(spec, scale_dims(spec, data)))
    arrays = data_arrays(data)
    t = spec.training

    def run(state=None):
        out, _ = train_models(task, arrays, batch, epochs=epochs, chunk_epochs=t.chunk_epochs,
                              eval_every=t.eval_every, state=state)
        return jax.block_until_ready(out.params)

    t0 = time.perf_counter()
    run()  # compile + a first run
    first = time.perf_counter() - t0
    best = math.inf
    for _ in range(3):
        state = init_state(task, batch)
        t0 = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - t0)
    models = len(replicas) * folds.n_models
    steps = int(np.ceil(folds.train.sum(axis=1).max() / t.batch_size)) * epochs
    return emit({"name": "loop", "models": models, "epochs": epochs, "wall_s": round(best, 3),
                 "first_call_s": round(first, 2),
                 "model_steps_per_s": round(models * steps / best)})


def bench_protocol() -> dict:
    start = time.perf_counter()
    cfg, spec, data = ae1()
    result = fit_scale(spec, data, make_folds(spec, data))
    wall = time.perf_counter() - start
    gap = result.metrics["heads"]["gap"]["pooled_val"]
    return emit({"name": "ae1_protocol", "devices": jax.device_count(), "models": 5,
                 "epochs": 1500, "wall_s": round(wall, 2),
                 "pooled_val_mae_eV": round(gap["mae"], 4), "r2": round(gap["r2"], 4)})


def bench_command() -> dict:
    """`nested-ae train` on AE1 as a whole process (the CLI's default devices)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nested_ae_jax.cli", "train", str(CONFIG),
                               "--out", str(Path(tmp) / "run"), "--quiet"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    mae = next(line.split()[2] for line in proc.stdout.splitlines()
               if line.startswith("atomic.gap") and " mae " in line)
    return emit({"name": "command", "wall_s": round(wall, 2), "pooled_val_mae_eV": float(mae)})


def bench_sweep(seeds: int) -> dict:
    t0 = time.perf_counter()
    result = sweep(load_config(CONFIG), {}, seeds=seeds)
    wall = time.perf_counter() - t0
    return emit({"name": "sweep_100", "models": result.n_models, "epochs": 1500,
                 "devices": jax.device_count(), "wall_s": round(wall, 2),
                 "mean_seed_mae_eV": round(float(result.runs["gap.mae"].mean()), 4),
                 "std_seed_mae_eV": round(float(result.runs["gap.mae"].std()), 4)})


def bench_torch(epochs: int) -> dict | None:
    script = REPO / "benchmarks" / "torch_ae1.py"
    proc = subprocess.run([sys.executable, str(script), "--epochs", str(epochs), "--json"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# torch baseline skipped: {proc.stderr.strip().splitlines()[-1:]}",
              file=sys.stderr)
        return None
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    return emit({**rec, "name": "torch_eager_ae1", "extrapolated": True})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip the 1500-epoch sweep and the command")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--torch-epochs", type=int, default=30)
    parser.add_argument("--loop-epochs", type=int, default=40)
    parser.add_argument("--sweep-seeds", type=int, default=20)
    parser.add_argument("--scale", action="store_true",
                        help="also train --scale-models models at once (a GPU figure)")
    parser.add_argument("--scale-models", default="1000,10000")
    parser.add_argument("--scale-epochs", type=int, default=20)
    parser.add_argument("--ab", action="store_true", help="A/B mode (see the docstring)")
    parser.add_argument("--ab-models", type=int, default=64)
    parser.add_argument("--ab-epochs", type=int, default=100)
    args = parser.parse_args()

    emit({"name": "machine", "platform": platform.platform(), "python": platform.python_version(),
          "jax": jax.__version__, "backend": jax.default_backend(),
          "devices": jax.device_count(), "cpus": os.cpu_count()})
    if args.ab:
        proto, loop = bench_protocol(), bench_loop(args.ab_models, args.ab_epochs)
        print(f"ab protocol_s={proto['wall_s']} model_steps_per_s={loop['model_steps_per_s']}")
        return 0
    rows = []
    for n in (5, 100):
        floor, loop = bench_floor(n), bench_loop(n, args.loop_epochs)
        ratio = loop["model_steps_per_s"] / floor["model_steps_per_s"]
        rows.append((f"training loop, {n} models (floor {floor['model_steps_per_s']:,})",
                     f"{loop['model_steps_per_s']:,} model-steps/s", PREVIOUS[f"loop_{n}"],
                     f"{ratio:.2f} of the floor (target >= 0.67)"))
    proto = bench_protocol()
    rows.append((f"paper AE1, 5 folds x 1500 epochs, compile included, {proto['devices']} "
                 "device(s)", f"{proto['wall_s']} s", PREVIOUS["ae1_protocol"],
                 f"target <= 6 s; pooled MAE {proto['pooled_val_mae_eV']} eV"))
    if not args.quick:
        cmd = bench_command()
        rows.append(("`nested-ae train` AE1, whole command", f"{cmd['wall_s']} s",
                     PREVIOUS["command"], f"target <= 8 s; MAE {cmd['pooled_val_mae_eV']}"))
        swp = bench_sweep(args.sweep_seeds)
        rows.append((f"{swp['models']} models x 1500 epochs (sweep of {args.sweep_seeds} seeds), "
                     f"{swp['devices']} device(s)", f"{swp['wall_s']} s", PREVIOUS["sweep_100"],
                     f"target <= 60 s; seed MAE {swp['mean_seed_mae_eV']} +- "
                     f"{swp['std_seed_mae_eV']} eV"))
    if not args.skip_torch:
        torch = bench_torch(args.torch_epochs)
        if torch:
            t = torch["extrapolated_5fold_1500ep_s"]
            rows.append((f"PyTorch eager, 1 thread (extrapolated from {torch['epochs_measured']}"
                         " epochs)", f"{t:.0f} s", "303 s",
                         f"our speed-up {t / proto['wall_s']:.1f}x"))
    if args.scale:
        for n in (int(x) for x in args.scale_models.split(",")):
            r = bench_loop(n, args.scale_epochs)
            rows.append((f"{r['models']:,} models at once, {r['epochs']} epochs",
                         f"{r['model_steps_per_s']:,} model-steps/s", "",
                         f"{r['wall_s']} s compiled, first call {r['first_call_s']} s"))
    print(f"\n{jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print("| measurement | now | previous | note |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
