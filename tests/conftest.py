"""Shared fixtures: tiny configs and frames (the real data sets ship with the package:
``nested_ae_jax.datasets``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]



def session_cache_dir() -> str:
    """A compilation cache folder of this test session's own, shared by its xdist workers
    (named by xdist's per-run id) and subprocesses, so tests share compiled programs but no
    state across runs. Folders of sessions over a day old are removed."""
    import shutil
    import tempfile
    import time

    root = Path(tempfile.gettempdir()) / f"nested_ae_jax_pytest_{os.getuid()}"
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    if root.is_dir():
        for old in root.iterdir():
            if old.name != run and time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
    return str(root / run)


# Compiled programs are cached on disk and shared by the test processes (and subprocesses):
# many tests compile the same small programs. Set before JAX initialises.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", session_cache_dir())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# Tests check arithmetic against numpy and finite differences: full float32 matmuls on every
# backend (a GPU's default uses reduced-precision passes; checked on an H200, jax 0.11.2).
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
# The suite's time is spent compiling hundreds of small programs, not running them: the
# unoptimised backend compiles about twice as fast. Paper-sized runs, where execution
# dominates, use the optimised backend in a subprocess (``optimised_env``).
UNOPTIMISED = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + UNOPTIMISED).strip()


# xdist's loadfile hands out files by their number of tests, fewest last: the few-test files
# that train the most (the paper's protocols, the parallel subprocesses, the CLI demo) came
# last, and one worker could run them while the other had nothing left. Instead the next
# free worker gets the costliest file still waiting (longest processing time first), so the
# end of the run is small files. Seconds per file measured in runs of the whole suite on the
# development VM (2 workers, 2026-12-02); a file not listed (each takes seconds) counts
# 0.1 s per test. Stale numbers cost balance only, never a test.
FILE_SECONDS = {
    "test_bo_chain.py": 200, "test_modules.py": 160, "test_compare.py": 120,
    "test_sweep.py": 125, "test_paper.py": 120, "test_parallel.py": 70,
    "test_bad_inputs.py": 95, "test_cli.py": 90, "test_nesting.py": 80,
    "test_chain_api.py": 75, "test_explain.py": 75, "test_links.py": 70,
    "test_training.py": 60, "test_bo_campaign.py": 55, "test_resume.py": 45,
    "test_design.py": 40, "test_runner.py": 35, "test_determinism.py": 30,
    "test_bo_ensemble.py": 30, "test_tune.py": 30, "test_model.py": 28,
    "test_bo_gp.py": 25, "test_bo_relearn.py": 22, "test_datasets.py": 17,
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile with the costliest waiting file first (see FILE_SECONDS)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class CostliestFileFirst(LoadFileScheduling):
        def _assign_work_unit(self, node):
            queue = self.workqueue  # {file: {test id: done}}, in xdist's order
            costliest = max(queue, key=lambda f: FILE_SECONDS.get(
                Path(f).name, 0.1 * len(queue[f])))
            queue.move_to_end(costliest, last=False)  # xdist assigns the first
            super()._assign_work_unit(node)

    return CostliestFileFirst(config, log)


def optimised_env() -> dict[str, str]:
    """The environment with XLA's default (optimised) backend: for subprocesses that train
    paper-sized models."""
    flags = os.environ.get("XLA_FLAGS", "").replace(UNOPTIMISED, "").strip()
    return {**os.environ, "XLA_FLAGS": flags}



def run_examples_module():
    """docs/run_examples.py (the docs' example checker) loaded as a module: its ``pages`` and
    ``blocks`` are the one extraction of the pages' Python examples."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("run_examples",
                                                  REPO / "docs" / "run_examples.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_examples"] = mod  # its dataclass looks its module up
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules["run_examples"]
    return mod


def central_differences(f, x, h: float = 1e-6):
    """d f / d x by central differences, one element of ``x`` at a time (x: a float64 numpy
    array; f: scalar function of an array of x's shape). Returns an array of x's shape."""
    import numpy as np

    fd = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[index] = h
        fd[index] = (f(x + e) - f(x - e)) / (2 * h)
    return fd

def tiny_scale(name: str = "s", *, data: str = "s.csv", latent: int = 2, epochs: int = 5,
               batch: int = 8, cv: dict | None = None, **extra) -> dict:
    """A small one-scale config table: numeric group x (columns a, b, c), optional
    categorical group 'kind' (column k), regression head y, reconstruction head x."""
    table = {
        "data": data,
        "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
        "encoder": {"latent_size": latent, "l1": 0.01},
        "heads": {"y": {"kind": "regression", "target": "y", "hidden": [8], "dropout": 0.1},
                  "x": {"kind": "reconstruction", "input": "x"}},
        "training": {"epochs": epochs, "batch_size": batch, "chunk_epochs": 5,
                     "checkpoint_every": 0, "eval_every": 1},
        "cv": cv or {"kind": "kfold", "n_splits": 3},
    }
    table.update(extra)
    return table


@pytest.fixture
def tiny_frame():
    """40 rows: numeric a, b, c, a 3-class column k, target y = a + 2b - c + class offset."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    k = np.array(["p", "q", "r"])[rng.integers(0, 3, 40)]
    y = x[:, 0] + 2 * x[:, 1] - x[:, 2] + (k == "q") * 1.5
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "k": k, "y": y})
