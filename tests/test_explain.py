"""Interpretability (nested_ae_jax.explain): latent activity, correlations, attributions,
latent-size scan, latent maps and the explain folder of a trained run."""

from __future__ import annotations

import itertools
import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import parse_config
from nested_ae_jax.cli import build_parser
from nested_ae_jax.explain import analysis, attribution, scan
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.nesting import nest
from nested_ae_jax.data import load_scale_data
from nested_ae_jax.synthetic import INTRINSIC_DIMS, make_nested_data

# ---------------------------------------------------------------------------------------------
# 1. latent activity


def test_a_latent_that_barely_varies_is_flagged_inactive():
    """Activity is measured on the latent (any encoder): std and mean |value| per unit."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 3)) * np.array([1.0, 0.5, 0.02]) + np.array([0.0, 0.0, 3.0])
    t = analysis.latent_activity(z)
    assert t["latent"].tolist() == ["latent_0", "latent_1", "latent_2"]
    assert t["active"].tolist() == [True, True, False]  # a constant offset is not activity
    assert t["std"].tolist() == pytest.approx(z.std(axis=0).tolist())
    assert t["rel_std"].tolist() == pytest.approx((z.std(axis=0) / z.std(axis=0)[0]).tolist())
    assert t["mean_abs"].tolist() == pytest.approx(np.abs(z).mean(axis=0).tolist())
    # the threshold is relative to the most active latent
    assert analysis.latent_activity(z, threshold=0.01)["active"].all()
    # a masked (dead) unit: std 0, inactive
    assert not analysis.latent_activity(np.c_[z[:, :2], np.zeros(200)])["active"][2]


# ---------------------------------------------------------------------------------------------
# 2. correlations


def test_pearson_matrix_matches_numpy_and_gives_nan_for_constant_columns():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    frame["c"] = frame["a"] * 2 - frame["b"] + rng.normal(size=50) * 0.1
    frame["k"] = 3.0
    r = analysis.pearson_matrix(frame)
    np.testing.assert_allclose(r.loc[["a", "b", "c"], ["a", "b", "c"]],
                               np.corrcoef(frame[["a", "b", "c"]].T), atol=1e-12)
    assert r["k"].isna().all() and r.loc["k"].isna().all()


def test_adjusted_correlation_shrinks_by_the_standard_error():
    r = np.array([[0.9, -0.9], [0.05, 1.0]])
    adj = analysis.adjusted_correlation(r, n=103)  # SE = 1/sqrt(100) = 0.1
    np.testing.assert_allclose(adj, [[0.8 / 0.9, 0.8 / 0.9], [0.0, 1.0]])
    assert np.isnan(analysis.adjusted_correlation(np.array([np.nan]), 10)[0])
    with pytest.raises(ValueError):
        analysis.adjusted_correlation(r, n=4)


# ---------------------------------------------------------------------------------------------
# 3. attributions


def tiny_model(latent=2, hidden=()):
    """Numeric group x (a, b, c) + categorical 'kind' (4 classes); heads y and x."""
    table = tiny_scale(latent=latent)
    table["inputs"]["kind"] = {"kind": "categorical", "column": "k"}
    table["encoder"]["hidden"] = list(hidden)
    table["heads"]["y"].update({"dropout": 0.0})
    spec = parse_config({"scales": {"s": table}}).scales[0]
    return scale_model(spec, ScaleDims((("x", 3), ("kind", 4)), (("y", 1), ("x", 3))))


def permutation_shapley(value, d):
    """Shapley values from their other definition: the mean over all d! player orderings of
    each player's marginal contribution when it joins those before it."""
    phi = 0.0
    for order in itertools.permutations(range(d)):
        before = []
        contrib = [None] * d
        for p in order:
            contrib[p] = value(before + [p]) - value(before)
            before.append(p)
        phi = phi + np.stack(contrib)
    return phi / math.factorial(d)


def test_scale_shapley_treats_a_categorical_input_as_one_player_and_matches_definition():
    model = tiny_model(latent=2)
    params = model.init(jax.random.key(0))
    stats = {"x": {"mean": jnp.array([0.5, 0.0, -0.5]), "scale": jnp.array([1.0, 2.0, 0.5])}}
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(12, 3)).astype(np.float32),
              "kind": rng.integers(0, 4, 12).astype(np.int32)}
    rows, bg = np.array([1, 5]), np.array([0, 2, 3, 7, 9])
    values, importance = attribution.scale_shapley(model, params, stats, inputs, rows, bg)
    players = ["a", "b", "c", "k"]
    assert list(importance.columns) == players
    assert list(importance.index) == ["y", "latent_0", "latent_1"]

    def outputs(x, kind):
        out = model.apply(params, stats, {"x": jnp.asarray(x), "kind": jnp.asarray(kind)})
        return np.concatenate([np.asarray(out.heads["y"]), np.asarray(out.latent)], 1)

    for r in rows:
        def value(members):
            x = inputs["x"][bg].copy()
            kind = inputs["kind"][bg].copy()
            for p in members:
                if p == 3:
                    kind[:] = inputs["kind"][r]  # the whole category swaps in
                else:
                    x[:, p] = inputs["x"][r, p]
            return outputs(x, kind).mean(axis=0)

        ref = permutation_shapley(value, 4)  # (players, outputs)
        got = values[values["row"] == r].set_index("output").loc[importance.index, players]
        np.testing.assert_allclose(got.to_numpy().T, ref, rtol=1e-4, atol=1e-5)
        table = values[values["row"] == r]
        np.testing.assert_allclose(table[players].sum(axis=1), table["f_x"] - table["base"],
                                   atol=1e-5)
    np.testing.assert_allclose(
        importance.to_numpy(),
        np.abs(values.set_index(["row", "output"])[players]).groupby("output").mean()
        .loc[importance.index].to_numpy(), rtol=1e-6)


def chain_pair():
    """Two smooth scales: 'up' (numeric u: 2 columns -> latent 2), 'down' (up's latent +
    numeric v: 1 column -> latent 2 -> head y)."""
    up = parse_config({"scales": {"up": {
        "data": "u.csv", "inputs": {"u": {"kind": "numeric", "columns": ["u0", "u1"]}},
        "encoder": {"latent_size": 2, "hidden": [4]},
        "heads": {"u": {"kind": "reconstruction", "input": "u"}}}}}).scales[0]
    down = parse_config({"scales": {
        "up": {"data": "u.csv", "inputs": {"u": {"kind": "numeric", "columns": ["u0", "u1"]}},
               "heads": {"u": {"kind": "reconstruction", "input": "u"}}},
        "down": {"data": "d.csv",
                 "inputs": {"lat": {"kind": "latent", "scale": "up"},
                            "v": {"kind": "numeric", "columns": ["v0"]}},
                 "encoder": {"latent_size": 2},
                 "heads": {"y": {"kind": "regression", "target": "y", "hidden": [5],
                                 "activation": "tanh"}}}}}).scales[1]
    models = {"up": scale_model(up, ScaleDims((("u", 2),), (("u", 2),))),
              "down": scale_model(down, ScaleDims((("lat", 2), ("v", 1)), (("y", 1),)))}
    return nest(models)


def test_chain_gradients_equal_finite_differences_through_both_scales():
    chain = chain_pair()
    cp = chain.init(jax.random.key(3))
    cp["up"].stats["u"] = {"mean": jnp.array([1.0, -1.0]), "scale": jnp.array([2.0, 0.5])}
    rng = np.random.default_rng(0)
    raw = {"up": {"u": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)},
           "down": {"v": jnp.asarray(rng.normal(size=(4, 1)), jnp.float32)}}
    grads = attribution.chain_gradients(chain.apply, cp, raw, "down", "y")
    assert set(grads) == {("up", "u"), ("down", "v")}
    assert grads[("up", "u")].shape == (4, 2)

    def y(u):
        return np.asarray(chain.apply(cp, {"up": {"u": u}, "down": raw["down"]})
                          ["down"].heads["y"][:, 0], np.float64)

    eps = 1e-2
    for j in range(2):
        step = jnp.zeros((4, 2)).at[:, j].set(eps)
        fd = (y(raw["up"]["u"] + step) - y(raw["up"]["u"] - step)) / (2 * eps)
        np.testing.assert_allclose(grads[("up", "u")][:, j], fd, rtol=2e-2, atol=2e-4)
    assert np.abs(grads[("up", "u")]).max() > 1e-3  # the upstream descriptors matter

    summary = attribution.gradient_summary(grads[("up", "u")], raw["up"]["u"], ["u0", "u1"])
    std = np.asarray(raw["up"]["u"]).std(axis=0)
    np.testing.assert_allclose(summary["mean_grad_x_std"],
                               grads[("up", "u")].mean(axis=0) * std, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# 4. latent-size scan


def test_elbow_is_the_smallest_size_within_a_tenth_of_the_error_range_of_the_best():
    assert analysis.ELBOW_FRAC == 0.1
    assert analysis.elbow([1, 2, 3, 4], [1.0, 0.15, 0.10, 0.09]) == 2
    assert analysis.elbow([4, 3, 2, 1], [0.09, 0.10, 0.15, 1.0]) == 2  # order-free
    assert analysis.elbow([1, 2, 3, 4], [1.0, 0.5, 0.2, 0.1]) == 4  # 0.2 > 0.1 + 0.09
    assert analysis.elbow([1, 2, 3], [0.3, 0.3, 0.3]) == 1


def test_masked_latent_units_are_dead():
    model = tiny_model(latent=3, hidden=(4,))
    params = model.init(jax.random.key(1))
    rng = np.random.default_rng(2)
    inputs = {"x": jnp.asarray(rng.normal(size=(10, 3)), jnp.float32),
              "kind": jnp.asarray(rng.integers(0, 4, 10), jnp.int32)}
    stats = {"x": {"mean": jnp.zeros(3), "scale": jnp.ones(3)}}
    mask = jnp.array([1.0, 1.0, 0.0])
    out = model.apply(params, stats, inputs, latent_mask=mask)
    assert np.all(np.asarray(out.latent[:, 2]) == 0.0)
    # changing the dead unit's weights changes nothing; changing a live unit's does
    last = "Dense_1"  # hidden (4,): the layer feeding the latent
    dead = jax.tree.map(lambda a: a, params)
    kernel = dead["encoder"]["params"][last]["kernel"]
    dead["encoder"]["params"][last]["kernel"] = kernel.at[:, 2].add(5.0)
    np.testing.assert_array_equal(model.apply(dead, stats, inputs, latent_mask=mask).heads["y"],
                                  out.heads["y"])
    live = jax.tree.map(lambda a: a, params)
    live["encoder"]["params"][last]["kernel"] = kernel.at[:, 0].add(5.0)
    assert not np.allclose(model.apply(live, stats, inputs, latent_mask=mask).heads["y"],
                           out.heads["y"])
    # an all-ones mask is the unmasked model
    np.testing.assert_array_equal(model.apply(params, stats, inputs,
                                              latent_mask=jnp.ones(3)).latent,
                                  model.apply(params, stats, inputs).latent)


def test_scan_elbow_is_at_the_true_intrinsic_dimension(monkeypatch):
    """scale1 of the synthetic generator: 6 descriptors of 2 hidden variables. Reconstruction
    error falls sharply from size 1 to 2 and then flattens: elbow = 2. All sizes and folds are
    trained by ONE fit_models call (one compiled program)."""
    calls = []
    real = scan.fit_models
    monkeypatch.setattr(scan, "fit_models", lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = make_nested_data(300, n_scales=1, seed=0)["scale1"]
    cols = [f"s1_f{i}" for i in range(6)]
    spec = parse_config({"scales": {"scale1": {
        "data": "scale1.csv", "inputs": {"d": {"kind": "numeric", "columns": cols}},
        "encoder": {"latent_size": 2, "hidden": [16]},
        "heads": {"d": {"kind": "reconstruction", "input": "d", "hidden": [16],
                        "loss": "mse"}},
        "training": {"epochs": 300, "batch_size": 32, "learning_rate": 1e-2,
                     "chunk_epochs": 300},
        "cv": {"kind": "kfold", "n_splits": 3}}}}).scales[0]
    data = load_scale_data(spec, "scale1.csv", frame=frame)
    table = scan.latent_size_scan(spec, data, [1, 2, 3, 4])
    assert len(calls) == 1
    assert sorted(table["latent_size"].unique()) == [1, 2, 3, 4]
    assert len(table) == 12 and sorted(table["fold"].unique()) == [0, 1, 2]
    summary = scan.scan_summary(table)
    rec = summary[summary["loss"] == "val/d"].set_index("latent_size")
    assert rec["elbow"].iloc[0] == INTRINSIC_DIMS["scale1"] == 2
    assert rec.loc[1, "mean"] > 5 * rec.loc[2, "mean"]  # one latent cannot hold two variables


# ---------------------------------------------------------------------------------------------
# 5. latent maps


def test_latent_map_is_the_latent_when_2d_and_pca_of_a_plane_otherwise():
    rng = np.random.default_rng(4)
    z2 = rng.normal(size=(30, 2))
    coords, labels, method = analysis.latent_map(z2, method="pca")
    assert method == "latent" and np.array_equal(coords, z2)
    basis = np.linalg.qr(rng.normal(size=(4, 2)))[0]  # a plane in 4-D
    z4 = (rng.normal(size=(30, 2)) * [3.0, 1.0]) @ basis.T + 5.0
    coords, labels, method = analysis.latent_map(z4, method="pca")
    assert method == "pca" and labels[0].startswith("PC1")
    _, ratio = analysis.pca_2d(z4)
    assert ratio.sum() == pytest.approx(1.0) and ratio[0] > ratio[1]
    # a rotation of the plane: pairwise distances are kept
    d_in = np.linalg.norm(z4[:, None] - z4[None], axis=-1)
    d_out = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# the explain folder of a trained two-scale run, through the CLI entry point


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A trained two-scale run on 60 synthetic rows (2 folds, a few epochs): scale1 (3
    descriptors -> 2 latents -> y1), scale2 (scale1's latent + 2 descriptors + a category ->
    3 latents -> y2)."""
    from nested_ae_jax.store import prepare_out_dir, write_run
    from nested_ae_jax.runner import fit_config

    tmp = tmp_path_factory.mktemp("explain")
    for name, frame in make_nested_data(60, n_scales=2, seed=0).items():
        frame.to_csv(tmp / f"{name}.csv", index=False)
    training = {"epochs": 4, "batch_size": 16, "chunk_epochs": 4, "checkpoint_every": 0}
    cv = {"kind": "kfold", "n_splits": 2}
    cfg = parse_config({"scales": {
        "scale1": {"data": str(tmp / "scale1.csv"),
                   "inputs": {"d": {"kind": "numeric", "columns": ["s1_f0", "s1_f1", "s1_f2"]}},
                   "encoder": {"latent_size": 2},
                   "heads": {"y1": {"kind": "regression", "target": "y1"},
                             "d": {"kind": "reconstruction", "input": "d"}},
                   "training": training, "cv": cv},
        "scale2": {"data": str(tmp / "scale2.csv"),
                   "inputs": {"lat": {"kind": "latent", "scale": "scale1"},
                              "d": {"kind": "numeric", "columns": ["s2_f0", "s2_f1"]},
                              "kind": {"kind": "categorical", "column": "s2_kind"}},
                   "encoder": {"latent_size": 3},
                   "heads": {"y2": {"kind": "regression", "target": "y2", "hidden": [4]}},
                   "training": training, "cv": cv}}}, str(tmp / "cfg.toml"))
    out = prepare_out_dir(tmp / "run")
    write_run(fit_config(cfg), out)
    return out


def test_explain_command_writes_the_folder_and_an_index_of_every_figure(demo_run, capsys):
    args = build_parser().parse_args(["explain", str(demo_run), "--background", "8", "--rows", "5",
                              "--scan-sizes", "2", "--scan-epochs", "2",
                              "--scan-scales", "scale1", "--quiet"])
    assert args.func(args) == 0
    assert "scale1 (fold 0)" in capsys.readouterr().out
    out = demo_run / "explain"
    index = (out / "index.md").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", index)
    assert sorted(linked) == pngs  # every figure shown once, nothing dangling
    for name in linked:  # ... each followed by its one-line caption
        assert re.search(re.escape(f"]({name})") + r"\n\n\*[^*\n]+\*\n", index), name
    for kind in ("activity", "corr_pearson", "corr_adjusted", "shapley", "latent_map"):
        for scale in ("scale1", "scale2"):
            assert f"{kind}_{scale}.png" in pngs
    assert {"gradients_scale2_y2.png", "scan_scale1_val-d.png"} <= set(pngs)
    assert not [p for p in pngs if p.startswith("scan_scale2")]

    activity = pd.read_csv(out / "latent_activity.csv")
    assert len(activity[activity["scale"] == "scale1"]) == 2 * 2  # 2 folds x 2 latents
    assert activity.groupby("scale")["explained"].sum().tolist() == [2, 3]

    shap = pd.read_csv(out / "shapley_scale2.csv")
    players = ["scale1.latent_0", "scale1.latent_1", "s2_f0", "s2_f1", "s2_kind"]
    assert list(shap.columns[4:]) == players
    assert shap["row"].nunique() == 5
    assert set(shap["output"]) == {"y2", "latent_0", "latent_1", "latent_2"}
    np.testing.assert_allclose(shap[players].sum(axis=1), shap["f_x"] - shap["base"],
                               atol=1e-4)

    grads = pd.read_csv(out / "gradients_scale2_y2.csv")
    assert len(grads) == 60
    assert list(grads.columns[1:]) == ["scale1.s1_f0", "scale1.s1_f1", "scale1.s1_f2",
                                       "scale2.s2_f0", "scale2.s2_f1"]

    corr = pd.read_csv(out / "corr_pearson_scale2.csv").set_index("variable")
    assert {"latent_0", "scale1.latent_1", "s2_f0", "s2_kind=a", "y2"} <= set(corr.columns)
    assert corr.loc["y2", "y2"] == pytest.approx(1.0)

    scan_table = pd.read_csv(out / "scan_scale1.csv")
    assert sorted(scan_table["latent_size"].unique()) == [1, 2]
    assert len(scan_table) == 2 * 2

    summary = json.loads((out / "summary.json").read_text())
    assert summary["shapley"]["scale1"]["coalitions"] == 2 ** 3
    assert summary["shapley"]["scale2"]["max_efficiency_error"] < 1e-4
    assert set(summary["scan"]) == {"scale1"}
