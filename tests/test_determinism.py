"""Determinism: the same config and seed give identical metrics.json (timings aside).

Every random stream is derived from (training.seed, fold, epoch), the folds from
cv.random_state, and XLA on CPU computes the same compiled program the same way every time.
The two fits below each compile from scratch (the in-memory caches are cleared in between and
the suite's persistent compilation cache is off for the second, which is checked: no cache
hit), so the test covers tracing and compilation as well as execution; across processes the
resume test compares two `nested-ae train` runs byte for byte.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from nested_ae_jax import training
from nested_ae_jax.config import parse_config
from nested_ae_jax.io import atomic_write_json
from nested_ae_jax.reports import metrics_document, oof_table
from nested_ae_jax.runner import fit_config
from test_bad_inputs import good_frame, good_scale, set_key


def metrics_json(cfg, path):
    """metrics.json as `nested-ae train` writes it, read back without its timings."""
    fit = fit_config(cfg)
    atomic_write_json(path, metrics_document(fit))
    doc = json.loads(path.read_text())
    doc.pop("wall_seconds")
    for entry in doc["scales"].values():
        entry.pop("seconds")
    return doc, oof_table(fit.results["s"])


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    frame = good_frame(40)
    frame.to_csv(tmp_path / "s.csv", index=False)
    table = set_key(set_key(good_scale(str(tmp_path / "s.csv")), "training.epochs", 60),
                    "training.learning_rate", 0.02)
    cfg = parse_config({"scales": {"s": table}}, str(tmp_path / "cfg.toml"))

    first, oof_first = metrics_json(cfg, tmp_path / "a.json")
    training._compiled_chunk.cache_clear()
    training._compiled_init.cache_clear()
    jax.clear_caches()
    hits, listening = [], [True]
    jax.monitoring.register_event_listener(
        lambda event, **_: listening[0] and event.endswith("/cache_hits") and hits.append(event))
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        second, oof_second = metrics_json(cfg, tmp_path / "b.json")
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        listening[0] = False
    assert not hits  # compiled from scratch, not read back from the persistent cache
    assert first == second
    assert oof_first.equals(oof_second)

    # another seed: other numbers (the seed reaches the weights), the same quality of fit:
    # both well below the error of predicting the training mean (computed here with numpy)
    other = parse_config({"scales": {"s": set_key(table, "training.seed", 1)}})
    reseeded, _ = metrics_json(other, tmp_path / "c.json")
    assert reseeded["scales"]["s"]["heads"] != first["scales"]["s"]["heads"]
    y = frame["y"].to_numpy()
    baseline = np.abs(y - y.mean()).mean()
    for doc in (first, reseeded):
        assert doc["scales"]["s"]["heads"]["y"]["pooled_val"]["mae"] < baseline / 3
