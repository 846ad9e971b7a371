"""Reproduction of the paper's numbers on the real data (METHOD.md §5): full protocol,
1500 epochs, 5-fold KFold(shuffle, random_state=0), per-sample metrics, dropout off. The
configs name the data sets shipped with the package (dataset:NAME): nothing to set.

Each protocol trains in a subprocess with XLA's optimised backend (the rest of the suite
compiles unoptimised, see conftest) and reports the pooled validation metrics of its heads."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, optimised_env

FIT = """
import json, sys
from nested_ae_jax.config import load_config
from nested_ae_jax.runner import fit_config
fit = fit_config(load_config(sys.argv[1]))
print(json.dumps({h: m["pooled_val"] for h, m in fit.results[sys.argv[2]].metrics["heads"].items()},
                 default=float))
"""


def pooled_metrics(config: str, scale: str) -> dict:
    """{HEAD: pooled validation metrics} of ``scale`` after training ``config``."""
    out = subprocess.run([sys.executable, "-c", FIT, str(REPO / config), scale],
                         env=optimised_env(), cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_ae1_band_gap_reproduces_the_paper():
    heads = pooled_metrics("experiments/perovskite/ae1_bandgap.toml", "atomic")
    gap = heads["gap"]
    print(f"AE1 pooled gap MAE {gap['mae']:.4f} eV (paper's models 0.167), R2 {gap['r2']:.4f}")
    assert gap["n"] == 494
    # one seed's pooled MAE varies with the seed: over seeds 0-9 it is 0.1703 +- 0.0049 with
    # the Flax built-in network (0.1696 +- 0.0035 with the hand-made layers before it; 0.1691
    # +- 0.0052 with per-epoch threefry noise). Seed 0, re-measured 2026-12-02: 0.1616 on one
    # CPU device (NESTED_AE_CPU_DEVICES=1), 0.1647 with `nested-ae train` on 2 (README.md).
    # The band holds the seed distribution; paper's models 0.167.
    assert 0.155 <= gap["mae"] <= 0.178
    assert gap["r2"] >= 0.95
    assert heads["descriptors"]["mae"] <= 0.03


def test_nested_chain_reproduces_the_paper_pce():
    heads = pooled_metrics("experiments/perovskite/nested_pce.toml", "device")
    pce = heads["pce"]
    print(f"AE2 pooled PCE MAE {pce['mae']:.3f} % (paper's models 2.62)")
    assert pce["n"] == 2018
    assert 2.52 <= pce["mae"] <= 2.78  # measured 2.631 on one CPU device (as above), 2.616 with
    # `nested-ae train` on 2 (README.md's 2.62; re-measured 2026-12-02); paper's models 2.62
    assert heads["etl"]["accuracy"] >= 0.99
    assert heads["htl"]["accuracy"] >= 0.99
    assert heads["atomic_latent"]["mae"] <= 0.04  # measured 0.031
