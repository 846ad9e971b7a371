"""Fitting a config end to end: folds, scalers, honest metrics, run directory, predict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import parse_config
from nested_ae_jax.errors import DataError, RunDirError
from nested_ae_jax.predict import predict_frame
from nested_ae_jax.chain import load as load_chain
from nested_ae_jax.store import prepare_out_dir, write_run
from nested_ae_jax.runner import fit_config


def tiny_config(tmp_path, frame, **kw):
    frame.to_csv(tmp_path / "s.csv", index=False)
    table = tiny_scale(data=str(tmp_path / "s.csv"), **kw)
    table["inputs"]["kind"] = {"kind": "categorical", "column": "k"}
    table["heads"]["kind"] = {"kind": "categorical", "input": "kind"}
    return parse_config({"scales": {"s": table}}, str(tmp_path / "cfg.toml"))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    k = np.array(["p", "q", "r"])[rng.integers(0, 3, 40)]
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "k": k,
                          "y": x[:, 0] + 2 * x[:, 1] - x[:, 2] + (k == "q") * 1.5})
    cfg = tiny_config(tmp, frame, epochs=10)
    fit = fit_config(cfg)
    out = prepare_out_dir(tmp / "run")
    write_run(fit, out)
    return frame, cfg, fit, out


def test_pooled_metrics_are_per_sample_over_every_validation_row(fitted):
    frame, cfg, fit, out = fitted
    result = fit.results["s"]
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert len(oof) == len(frame) and sorted(oof["fold"].unique()) == [0, 1, 2]
    err = oof["y"] - oof["y.true"]
    pooled = result.metrics["heads"]["y"]["pooled_val"]
    assert pooled["n"] == 40
    assert pooled["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert pooled["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-5)
    ss_tot = ((oof["y.true"] - oof["y.true"].mean()) ** 2).sum()
    assert pooled["r2"] == pytest.approx(1 - (err**2).sum() / ss_tot, rel=1e-4)
    np.testing.assert_allclose(oof["y.true"], frame["y"], rtol=1e-6)
    acc = result.metrics["heads"]["kind"]["pooled_val"]["accuracy"]
    assert acc == pytest.approx((oof["kind"] == oof["kind.true"]).mean())


def test_each_fold_scaler_is_fitted_on_its_training_rows_only(fitted):
    frame, cfg, fit, out = fitted
    result = fit.results["s"]
    for f in range(3):
        train = frame[result.folds.fold_of_row != f][["a", "b", "c"]].to_numpy()
        np.testing.assert_allclose(np.asarray(result.batch.stats["x"]["mean"][f]),
                                   train.mean(0), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(result.batch.stats["x"]["scale"][f]),
                                   train.std(0), rtol=1e-5)


def test_metrics_json_has_the_documented_schema(fitted):
    doc = json.loads((fitted[3] / "metrics.json").read_text())
    heads = doc["scales"]["s"]["heads"]
    assert set(heads["y"]["pooled_val"]) >= {"mae", "rmse", "r2"}
    assert set(heads["kind"]["pooled_val"]) >= {"accuracy", "cross_entropy"}
    assert "mae" in heads["x"]["pooled_val"]
    assert len(doc["scales"]["s"]["folds"]) == 3
    assert set(doc["scales"]["s"]["folds"][0]) == {"train", "val"}
    assert "mae" in doc["scales"]["s"]["folds"][2]["val"]["y"]
    assert doc["wall_seconds"] > 0
    for name in ("config.toml", "history.csv", "figures/parity_s_y.png",
                 "figures/learning_curves_s.png"):
        assert (fitted[3] / name).stat().st_size > 0


def test_a_saved_run_predicts_what_the_trained_models_predicted(fitted):
    frame, cfg, fit, out = fitted
    run = load_chain(out)
    table = predict_frame(run, frame, fold=1)
    in_memory = np.asarray(fit.results["s"].outputs.heads["y"][1, :, 0])
    np.testing.assert_allclose(table["s.y"], in_memory, rtol=1e-5, atol=1e-6)
    latent = np.asarray(fit.results["s"].outputs.latent[1])
    np.testing.assert_allclose(table[["s.latent_0", "s.latent_1"]], latent, rtol=1e-5,
                               atol=1e-6)
    ensemble = predict_frame(run, frame)
    mean = np.asarray(fit.results["s"].outputs.heads["y"][:, :, 0]).mean(0)
    np.testing.assert_allclose(ensemble["s.y"], mean, rtol=1e-5, atol=1e-6)
    assert (ensemble["s.y.std"] > 0).all()


def test_predict_uses_the_stored_scaler_not_one_refitted_on_new_rows(fitted):
    frame, cfg, fit, out = fitted
    run = load_chain(out)
    first = predict_frame(run, frame.iloc[:5], fold=0)
    whole = predict_frame(run, frame, fold=0).iloc[:5]
    np.testing.assert_allclose(first["s.y"], whole["s.y"], rtol=1e-5, atol=1e-7)


def test_predict_rejects_unknown_categories_and_missing_columns(fitted):
    frame, cfg, fit, out = fitted
    run = load_chain(out)
    bad = frame.copy()
    bad.loc[3, "k"] = "zz"
    with pytest.raises(DataError, match=r"column 'k' has unknown category \['zz'\]"):
        predict_frame(run, bad)
    with pytest.raises(DataError, match="no column 'b'"):
        predict_frame(run, frame.drop(columns="b"))


def test_run_directory_is_not_overwritten_without_permission(fitted):
    with pytest.raises(RunDirError, match="already holds a run"):
        prepare_out_dir(fitted[3])


def test_bad_data_values_name_column_and_row(tmp_path, tiny_frame):
    bad = tiny_frame.astype({"b": object})
    bad.loc[7, "b"] = "abc"
    with pytest.raises(DataError, match=r"column 'b' row 9 is not a finite number \('abc'\)"):
        fit_config(tiny_config(tmp_path, bad))
    bad = tiny_frame.copy()
    bad.loc[2, "y"] = np.nan
    with pytest.raises(DataError, match=r"column 'y' row 4 is missing \(NaN\)"):
        fit_config(tiny_config(tmp_path, bad))
    bad = tiny_frame.rename(columns={"c": "cc"})
    with pytest.raises(DataError, match="no column 'c' \\(did you mean 'cc'\\?\\)"):
        fit_config(tiny_config(tmp_path, bad))
    bad = tiny_frame.assign(a=1.0)
    with pytest.raises(DataError, match="constant"):
        fit_config(tiny_config(tmp_path, bad))


def test_an_ensemble_trains_members_x_folds_at_once_and_reports_their_mean(tmp_path, tiny_frame):
    cfg = tiny_config(tmp_path, tiny_frame, epochs=5)
    from nested_ae_jax.config import override
    from nested_ae_jax.evaluation import predict_models
    cfg = override(cfg, {"s.training.ensemble": 3})
    fit = fit_config(cfg)
    r = fit.results["s"]
    assert np.asarray(r.batch.seed).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # member-major
    assert np.asarray(r.batch.fold).tolist() == [0, 1, 2] * 3
    every = predict_models(r.model, r.params, r.batch.stats, r.data.inputs).heads["y"]
    members = np.asarray(every).reshape(3, 3, 40, 1)
    np.testing.assert_allclose(r.outputs.heads["y"], members.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.outputs_std["y"], members.std(0), rtol=1e-4, atol=1e-6)
    out = prepare_out_dir(tmp_path / "run")
    write_run(fit, out)
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert (oof["y.std"] > 0).all()
    table = predict_frame(load_chain(out), tiny_frame)
    np.testing.assert_allclose(table["s.y"], members.reshape(9, 40).mean(0), rtol=1e-5,
                               atol=1e-6)
