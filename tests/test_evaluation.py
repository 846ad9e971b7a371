"""Honest metrics, checked against an independent computation: each row predicted by the
model of its own fold through a plain numpy forward pass, scored with numpy, compared with
what the trainer reports (metrics.json's pooled out-of-fold figures)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import parse_config
from nested_ae_jax.data import fit_stats
from nested_ae_jax.reports import metrics_document
from nested_ae_jax.runner import fit_config


def _dense(variables, i, x):
    """Layer i of a built-in network's flax variables: x @ kernel + bias, in float64."""
    layer = variables["params"][f"Dense_{i}"]
    return x @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)


def numpy_forward(params, stats, x, codes, n_classes):
    """The tiny scale's network in numpy: standardise, one-hot, tanh encoder, heads."""
    feats_x = (x - np.asarray(stats["x"]["mean"])) / np.asarray(stats["x"]["scale"])
    onehot = np.eye(n_classes)[codes]
    z = np.tanh(_dense(params["encoder"], 0, np.concatenate([feats_x, onehot], axis=1)))
    hidden = np.maximum(_dense(params["heads"]["y"], 0, z), 0.0)  # relu, dropout off
    return {"y": _dense(params["heads"]["y"], 1, hidden),
            "x": _dense(params["heads"]["x"], 0, z), "x_true": feats_x,
            "kind": _dense(params["heads"]["kind"], 0, z)}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(5)
    n = 37  # folds of 13, 12, 12 rows: unequal, so a per-fold average would differ
    x = rng.normal(size=(n, 3))
    k = np.array(["p", "q", "r"])[rng.integers(0, 3, n)]
    import pandas as pd
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "k": k,
                          "y": x[:, 0] - x[:, 1] * x[:, 2] + (k == "q")})
    frame.to_csv(tmp / "s.csv", index=False)
    table = tiny_scale(data=str(tmp / "s.csv"), epochs=15, latent=3)
    table["inputs"]["kind"] = {"kind": "categorical", "column": "k"}
    table["heads"]["kind"] = {"kind": "categorical", "input": "kind"}
    cfg = parse_config({"scales": {"s": table}}, str(tmp / "cfg.toml"))
    fit = fit_config(cfg)
    return frame, fit, json.loads(json.dumps(metrics_document(fit)))


def test_pooled_out_of_fold_metrics_equal_a_numpy_forward_pass(fitted):
    frame, fit, doc = fitted
    r = fit.results["s"]
    x = frame[["a", "b", "c"]].to_numpy(np.float64)
    codes = np.searchsorted(["p", "q", "r"], frame["k"].to_numpy())
    fold = r.folds.fold_of_row
    pred = {k: np.zeros((len(frame), w)) for k, w in (("y", 1), ("x", 3), ("x_true", 3),
                                                       ("kind", 3))}
    for f in range(3):
        rows = fold == f
        params = jax.tree.map(lambda a: np.asarray(a)[f], r.params)  # fold f's model
        stats = {"x": {k: np.asarray(v)[f] for k, v in r.stats["x"].items()}}
        out = numpy_forward(params, stats, x[rows], codes[rows], 3)
        for k in pred:
            pred[k][rows] = out[k]
    y = frame["y"].to_numpy()[:, None]
    err = pred["y"] - y
    want = {"mae": np.abs(err).mean(), "rmse": np.sqrt((err ** 2).mean()),
            "r2": 1 - (err ** 2).sum() / ((y - y.mean()) ** 2).sum()}
    got = doc["scales"]["s"]["heads"]["y"]["pooled_val"]
    assert got["n"] == len(frame)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    rec = doc["scales"]["s"]["heads"]["x"]["pooled_val"]["mae"]
    assert rec == pytest.approx(np.abs(pred["x"] - pred["x_true"]).mean(), rel=1e-4)
    acc = doc["scales"]["s"]["heads"]["kind"]["pooled_val"]["accuracy"]
    assert acc == pytest.approx((pred["kind"].argmax(1) == codes).mean())
    # per-sample pooling, not a mean of per-fold figures (the folds are of unequal size)
    folds = [np.abs(err[fold == f]).mean() for f in range(3)]
    assert got["mae"] != pytest.approx(np.mean(folds), rel=1e-9)


def test_a_column_constant_on_the_training_rows_gets_scale_one():
    """float32 data: a column equal to 0.3 on every training row of a fold must not be
    divided by its rounding noise (other rows would standardise to ~1e8)."""
    x = np.full((10, 2), 0.3, np.float32)
    x[:, 1] = np.linspace(0, 1, 10)
    x[8:, 0] = [0.5, 0.7]  # varies only on rows outside the first model's training rows
    masks = np.ones((2, 10))
    masks[0, 8:] = 0
    stats = fit_stats(x, masks, name="g", source="test")
    assert stats["scale"][0, 0] == 1.0 and stats["mean"][0, 0] == pytest.approx(0.3)
    standardised = (x[9, 0] - stats["mean"][0, 0]) / stats["scale"][0, 0]
    assert abs(standardised) < 1.0
    np.testing.assert_allclose(stats["scale"][1], x.astype(np.float64).std(axis=0), rtol=1e-6)
    assert stats["scale"][0, 1] == pytest.approx(x[:8, 1].astype(np.float64).std(), rel=1e-6)


def test_predictions_in_row_chunks_equal_one_call(fitted):
    """37 rows in chunks of 10 (the last padded): the same outputs as the whole table."""
    from nested_ae_jax.evaluation import predict_models

    _, fit, _ = fitted
    r = fit.results["s"]
    whole = predict_models(r.model, r.params, r.batch.stats, r.data.inputs)
    chunked = predict_models(r.model, r.params, r.batch.stats, r.data.inputs, chunk=10)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
        assert a.shape == b.shape and a.shape[1] == 37
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
