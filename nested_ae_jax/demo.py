"""The embedded default job: a two-scale nested autoencoder on synthetic data made in memory.

Scale 1 descriptors depend on two hidden variables, scale 2's own descriptors on three (one of
them shared with scale 1), so the latent sizes below are the true intrinsic dimensions
(see :mod:`nested_ae_jax.synthetic`). No files or GPU needed.
"""

from __future__ import annotations

from pathlib import Path

from . import io
from .config import Config, parse_config
from .synthetic import INTRINSIC_DIMS, make_nested_data

_S1 = [f"s1_f{i}" for i in range(6)]
_S2 = [f"s2_f{i}" for i in range(6)]


def demo_config(data_dir: Path, *, epochs: int = 300, seed: int = 0) -> Config:
    """The demo's config: scale1 (6 descriptors -> 2 latents -> y1), then scale2 (scale1's
    latent + 6 descriptors + a 3-class category -> 3 latents -> y2)."""
    training = {"epochs": epochs, "batch_size": 32, "learning_rate": 3e-3, "seed": seed,
                "chunk_epochs": 50}
    cv = {"kind": "kfold", "n_splits": 5, "random_state": seed}
    doc = {
        "scales": {
            "scale1": {
                "data": str(data_dir / "scale1.csv"),
                "inputs": {"descriptors": {"kind": "numeric", "columns": _S1}},
                "encoder": {"latent_size": INTRINSIC_DIMS["scale1"], "hidden": [16],
                            "l1": 1e-3},
                "heads": {"y1": {"kind": "regression", "target": "y1", "hidden": [32]},
                          "descriptors": {"kind": "reconstruction", "input": "descriptors",
                                          "hidden": [16]}},
                "training": training, "cv": cv,
            },
            "scale2": {
                "data": str(data_dir / "scale2.csv"),
                "inputs": {"scale1_latent": {"kind": "latent", "scale": "scale1"},
                           "descriptors": {"kind": "numeric", "columns": _S2},
                           "kind": {"kind": "categorical", "column": "s2_kind"}},
                "encoder": {"latent_size": INTRINSIC_DIMS["scale2"], "hidden": [16],
                            "l1": 1e-3},
                "heads": {"y2": {"kind": "regression", "target": "y2", "hidden": [32]},
                          "descriptors": {"kind": "reconstruction", "input": "descriptors",
                                          "hidden": [16]},
                          "scale1_latent": {"kind": "reconstruction", "input": "scale1_latent",
                                            "hidden": [16]},
                          "kind": {"kind": "categorical", "input": "kind"}},
                "training": training, "cv": cv,
            },
        },
    }
    return parse_config(doc, "<demo>")


def write_demo_data(data_dir: Path, *, rows: int = 600, noise: float = 0.0, seed: int = 0
                    ) -> None:
    """Generate the synthetic scales and write them as CSV files into ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in make_nested_data(rows, n_scales=2, noise=noise, seed=seed).items():
        io.atomic_write_csv(data_dir / f"{name}.csv", frame)
