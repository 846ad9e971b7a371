#!/usr/bin/env python
"""Training speed of nested_ae_jax on the paper's AE1, with the PyTorch eager baseline, in one
run. Prints one JSON line per measurement, then a Markdown table with the targets.

Measurements (all on the paper's AE1: 15 -> 12 tanh latent, gap head 100 ReLU + dropout 0.1,
linear decoder, L1 0.01, Adam 1e-3, batch 10, 494 rows, KFold(5, shuffle, random_state=0)):

- ae1_protocol: 5 folds x 1500 epochs in one compiled call, wall time including compile, and
  the pooled validation MAE it reaches (so the timing is of the real protocol).
- torch_eager: the same model, data and batch size in a plain PyTorch loop with 1 thread
  (benchmarks/torch_ae1.py; needs ``pip install torch==2.13.0``), measured over --torch-epochs
  epochs of one fold and EXTRAPOLATED to 5 folds x 1500 epochs -> our speed-up ratio.
- throughput: 1, 8, 64, 512 models trained at once (seeds x 1 fold) for --throughput-epochs
  epochs: model-steps per second and wall time (compile excluded: a warm-up call runs first).
- sweep_100: 20 seeds x 5 folds = 100 models x 1500 epochs, wall time including compile.

Usage: python benchmarks/speed.py [--quick] [--skip-torch]

A/B mode (``--ab``): only the AE1 protocol and one throughput figure (--ab-models models x
--ab-epochs epochs), then one line ``ab protocol_s=... model_steps_per_s=...``. It uses only
functions every version of the package has, so the same script times another checkout:
``PYTHONPATH=/path/to/other/checkout python benchmarks/speed.py --ab`` (run the two
alternately, several times each, and compare medians).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nested_ae_jax.config import load_config, override, resolve_data_path
from nested_ae_jax.model import scale_model
from nested_ae_jax.data import load_scale_data
from nested_ae_jax.fitting import Replica, model_batch, replica_layout
from nested_ae_jax.model import scale_dims
from nested_ae_jax.runner import fit_scale
from nested_ae_jax.splits import Folds, make_folds
from nested_ae_jax.sweep import sweep
from nested_ae_jax.training import hyperparameters, init_state, scale_task, train_models

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments/perovskite/ae1_bandgap.toml"


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def ae1(data_root: str | None, epochs: int | None = None):
    cfg = load_config(CONFIG)
    if epochs:
        cfg = override(cfg, {"atomic.training.epochs": epochs})
    spec = cfg.scales[0]
    path = resolve_data_path(spec.data, CONFIG.parent, data_root)
    return cfg, spec, load_scale_data(spec, path)


def bench_protocol(data_root: str) -> dict:
    start = time.perf_counter()
    cfg, spec, data = ae1(data_root)
    result = fit_scale(spec, data, make_folds(spec, data))
    wall = time.perf_counter() - start
    gap = result.metrics["heads"]["gap"]["pooled_val"]
    return emit({"name": "ae1_protocol", "models": 5, "epochs": 1500, "wall_s": round(wall, 2),
                 "train_s": round(result.seconds, 2), "pooled_val_mae_eV": round(gap["mae"], 4),
                 "r2": round(gap["r2"], 4), "includes": "data load, compile, training, "
                 "evaluation"})


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


def bench_throughput(data_root: str, n_models: int, epochs: int) -> dict:
    cfg, spec, data = ae1(data_root, epochs)
    folds = make_folds(spec, data)
    one = Folds(folds.fold_of_row, folds.train[:1], folds.val[:1])
    hp = hyperparameters(spec)
    batch = model_batch(spec, data, replica_layout(spec, one, [Replica(s, hp)
                                                              for s in range(n_models)]))
    task = scale_task(scale_model(spec, scale_dims(spec, data)))
    arrays = {"inputs": jax.tree.map(jnp.asarray, data.inputs),
              "targets": jax.tree.map(jnp.asarray, data.targets)}
    run = lambda state=None: train_models(task, arrays, batch, epochs=epochs,  # noqa: E731
                                          chunk_epochs=spec.training.chunk_epochs, state=state)
    t0 = time.perf_counter()
    run()  # compile + a first run
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, _ = run(init_state(task, batch))
    jax.block_until_ready(state.params)
    wall = time.perf_counter() - t0
    steps = int(np.ceil(one.train.sum() / spec.training.batch_size)) * epochs
    return emit({"name": "throughput", "models": n_models, "epochs": epochs,
                 "steps_per_model": steps, "wall_s": round(wall, 3),
                 "first_call_s": round(first, 2),
                 "model_steps_per_s": round(n_models * steps / wall)})


def bench_sweep(data_root: str, seeds: int) -> dict:
    cfg = load_config(CONFIG)
    t0 = time.perf_counter()
    result = sweep(cfg, {}, seeds=seeds, data_root=data_root)
    wall = time.perf_counter() - t0
    return emit({"name": "sweep", "models": result.n_models, "epochs": 1500,
                 "wall_s": round(wall, 2), "groups": result.n_groups,
                 "best_seed_mae_eV": round(float(result.runs["gap.mae"].min()), 4),
                 "mean_seed_mae_eV": round(float(result.runs["gap.mae"].mean()), 4)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="folder for relative data paths (the config "
                        "names a shipped data set, so none is needed)")
    parser.add_argument("--quick", action="store_true",
                        help="skip the 1500-epoch sweep; fewer throughput epochs")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--torch-epochs", type=int, default=30)
    parser.add_argument("--throughput-epochs", type=int, default=20)
    parser.add_argument("--sizes", default="1,8,64,512")
    parser.add_argument("--sweep-seeds", type=int, default=20)
    parser.add_argument("--ab", action="store_true", help="A/B mode: the AE1 protocol and one "
                        "throughput figure only (see the module docstring)")
    parser.add_argument("--ab-models", type=int, default=64)
    parser.add_argument("--ab-epochs", type=int, default=100)
    args = parser.parse_args()
    if args.ab:
        import nested_ae_jax
        emit({"name": "checkout", "package": str(Path(nested_ae_jax.__file__).parent)})
        proto = bench_protocol(args.data_root)
        tput = bench_throughput(args.data_root, args.ab_models, args.ab_epochs)
        print(f"ab protocol_s={proto['wall_s']} mae={proto['pooled_val_mae_eV']} "
              f"model_steps_per_s={tput['model_steps_per_s']}")
        return 0

    emit({"name": "machine", "platform": platform.platform(), "python": platform.python_version(),
          "jax": jax.__version__, "backend": jax.default_backend(),
          "devices": jax.device_count(), "cpus": os.cpu_count()})
    proto = bench_protocol(args.data_root)
    torch = None if args.skip_torch else bench_torch(args.torch_epochs)
    tput = [bench_throughput(args.data_root, int(n), 5 if args.quick else args.throughput_epochs)
            for n in args.sizes.split(",")]
    swp = None if args.quick else bench_sweep(args.data_root, args.sweep_seeds)

    rows = [("paper AE1, 5 folds x 1500 epochs (compile included)", f"{proto['wall_s']} s",
             "<= 10 s", f"pooled MAE {proto['pooled_val_mae_eV']} eV")]
    if torch:
        t = torch["extrapolated_5fold_1500ep_s"]
        rows.append(("PyTorch eager, 1 thread, same run (extrapolated from "
                     f"{torch['epochs_measured']} epochs)", f"{t:.0f} s", "",
                     f"speed-up {t / proto['wall_s']:.1f}x (target >= 20x)"))
    for r in tput:
        rows.append((f"{r['models']} models at once, {r['epochs']} epochs",
                     f"{r['wall_s']} s", "", f"{r['model_steps_per_s']:,} model-steps/s"))
    if swp:
        rows.append((f"sweep: {args.sweep_seeds} seeds x 5 folds = {swp['models']} models x 1500 "
                     "epochs", f"{swp['wall_s']} s", "<= 60 s",
                     f"seed MAE mean {swp['mean_seed_mae_eV']} eV"))
    print("\n| measurement | wall time | target | note |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
