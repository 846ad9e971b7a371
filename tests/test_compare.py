"""The comparison command: identical folds for every model, honest grouped splits, baselines
checked against independent numpy, seed batches equal to separate runs. Tiny data and a few
epochs: these test the plumbing, not the numbers."""


import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import compare as cmp
from nested_ae_jax.compare import configs, reconstruction, report, supervised as sup
from nested_ae_jax.config import parse_config
from nested_ae_jax.data import fit_stats
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.runner import plan_chain
from nested_ae_jax.trained import feed_latents
from nested_ae_jax.synthetic import make_nested_data

S1 = [f"s1_f{i}" for i in range(6)]
S2 = [f"s2_f{i}" for i in range(6)]


def chain_frames(seed: int = 0) -> dict[str, pd.DataFrame]:
    """scale1: 40 distinct compositions; scale2: 90 devices drawn from 12 compositions x 30
    device rows, so identical input rows and shared compositions both occur (with different
    targets, as in the perovskite device data)."""
    f1 = make_nested_data(40, n_scales=1, seed=seed)["scale1"]
    dev = make_nested_data(30, n_scales=2, seed=seed + 1)["scale2"]
    rng = np.random.default_rng(seed)
    comp, row = rng.integers(0, 12, 90), rng.integers(0, 30, 90)
    f2 = pd.concat([f1.loc[comp, S1].reset_index(drop=True),
                    dev.loc[row, S2 + ["s2_kind", "y2"]].reset_index(drop=True)], axis=1)
    f2["y2"] = f2["y2"] + rng.normal(0, 0.1, len(f2))
    return {"scale1": f1, "scale2": f2}


def chain_config(epochs: int = 3):
    # the splits share compiled programs: every fold of every split has 26-27 (scale1) or
    # 50-66 (scale2) training rows, so scale1 is one full batch of 27 rows per epoch (the cap
    # at the most training rows, the same in every split) and scale2 two batches of 40 (a
    # batch larger than every fold would be capped at each split's own largest fold: a
    # program per split)
    train = {"epochs": epochs, "batch_size": 40}
    cv = {"kind": "kfold", "n_splits": 3, "random_state": 0}
    return parse_config({"scales": {
        "scale1": {"data": "<mem>", "inputs": {"desc": {"kind": "numeric", "columns": S1}},
                   "encoder": {"latent_size": 3},
                   "heads": {"y1": {"kind": "regression", "target": "y1", "hidden": [8]},
                             "desc": {"kind": "reconstruction", "input": "desc"}},
                   "training": train, "cv": cv},
        "scale2": {"data": "<mem>",
                   "inputs": {"s1_latent": {"kind": "latent", "scale": "scale1"},
                              "own": {"kind": "numeric", "columns": S2},
                              "kind": {"kind": "categorical", "column": "s2_kind"}},
                   "encoder": {"latent_size": 3},
                   "heads": {"y2": {"kind": "regression", "target": "y2", "hidden": [8]},
                             "s1_latent": {"kind": "reconstruction", "input": "s1_latent"},
                             "own": {"kind": "reconstruction", "input": "own"},
                             "kind": {"kind": "categorical", "input": "kind"}},
                   "training": train, "cv": cv, "scaler": "all"}}}, "chain.toml")


@pytest.fixture(scope="module")
def frames():
    return chain_frames()


@pytest.fixture(scope="module")
def supervised(frames):
    return cmp.compare(chain_config(), frames=frames, splits=cmp.SPLITS)


def test_table_has_every_model_for_every_target_and_split(supervised):
    table = supervised.table
    assert list(table.columns) == cmp.TABLE_COLUMNS
    assert len(table) == len(cmp.SPLITS) * (4 + 6)
    for split in cmp.SPLITS:
        t = table[table.split == split]
        assert list(t[t.target == "scale1.y1"].model) == ["NestedAE", *cmp.SKLEARN_MODELS]
        assert list(t[t.target == "scale2.y2"].model) == [
            "NestedAE", "single AE (raw)", "single AE (own)", *cmp.SKLEARN_MODELS]
    assert (table.n == np.where(table.target == "scale1.y1", 40, 90)).all()
    assert (table.n_folds == 3).all()
    assert np.isfinite(table[["mae", "rmse", "r2", "fold_mae_mean", "fold_mae_std"]]).all().all()
    md = report.summary_markdown(table)
    assert md.count("\n") == len(table) + 1 and "| scale2.y2 | group_rows | ridge |" in md


def test_every_model_of_a_split_sees_the_same_folds(supervised):
    for (split, scale), models in supervised.folds.items():
        assert len(models) == (6 if scale == "scale2" else 4)
        ref = supervised.fits[split].results[scale].folds.fold_of_row
        for name, fold_of_row in models.items():
            np.testing.assert_array_equal(fold_of_row, ref, err_msg=f"{split} {scale} {name}")
    # and the splits really are different partitions of the device rows
    device = [supervised.folds[(s, "scale2")]["NestedAE"] for s in cmp.SPLITS]
    for a, b in zip(device, device[1:]):
        assert not np.array_equal(a, b)


def test_grouped_splits_never_split_a_group(supervised, frames):
    f2 = frames["scale2"]
    keys = {"group_rows": S1 + S2 + ["s2_kind"], "group_composition": S1, "matched": S1}
    for split, cols in keys.items():
        fold = supervised.folds[(split, "scale2")]["single AE (own)"]
        per_group = pd.Series(fold).groupby([f2[c] for c in cols]).nunique()
        assert (per_group == 1).all(), split
        assert per_group.size == len(f2[cols].drop_duplicates())
    # random KFold does split groups here (that is the leak the grouped splits remove)
    fold = supervised.folds[("random", "scale2")]["NestedAE"]
    assert (pd.Series(fold).groupby([f2[c] for c in S1]).nunique() > 1).any()


def test_mean_predictor_matches_numpy(supervised, frames):
    for split in cmp.SPLITS:
        for scale, target in (("scale1", "y1"), ("scale2", "y2")):
            y = frames[scale][target].to_numpy(np.float64)
            fold = supervised.folds[(split, scale)]["mean"]
            pred = np.array([y[fold != fold[i]].mean() for i in range(len(y))])
            fold_mae = [np.abs(y - pred)[fold == f].mean() for f in range(3)]
            row = supervised.table.query("split == @split and target == @scale + '.' + "
                                         "@target and model == 'mean'").iloc[0]
            # (targets are stored as float32)
            assert row.mae == pytest.approx(np.abs(y - pred).mean(), rel=1e-6)
            assert row.rmse == pytest.approx(np.sqrt(((y - pred) ** 2).mean()), rel=1e-6)
            assert row.fold_mae_mean == pytest.approx(np.mean(fold_mae), rel=1e-6)
            assert row.fold_mae_std == pytest.approx(np.std(fold_mae), rel=1e-5)


def test_nestedae_row_is_recomputed_from_the_trained_chains_predictions(supervised, frames):
    """Each fold's trained chain (trained.chain_copies: the prediction path, not the training
    batch's outputs; copy f = fold f's model and its upstream feeders) predicts its own
    validation rows from the raw columns; numpy pools them."""
    from nested_ae_jax.trained import apply_copies, chain_copies

    for split in cmp.SPLITS:
        fit = supervised.fits[split]
        for scale, head in (("scale1", "y1"), ("scale2", "y2")):
            fold, frame = fit.results[scale].folds.fold_of_row, frames[scale]
            chain, params = chain_copies(fit.trained, scale, np.arange(3))
            inputs = fit.inputs(frame, scale=scale)
            out = np.asarray(apply_copies(chain, params, inputs)[scale].heads[head])
            pred = out[fold, np.arange(len(frame)), 0]  # (3, N, 1) -> each row's own fold
            y = frame[head].to_numpy(np.float64)
            row = supervised.table.query("split == @split and target == @scale + '.' + @head "
                                         "and model == 'NestedAE'").iloc[0]
            assert row.mae == pytest.approx(np.abs(pred - y).mean(), rel=1e-4)
            r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
            assert row.r2 == pytest.approx(r2, rel=1e-3, abs=1e-4)


def test_ridge_row_equals_scikit_learn_fitted_here_and_rf_is_deterministic(supervised,
                                                                           frames):
    """scale1's ridge row against a StandardScaler + Ridge(alpha=1) pipeline fitted by the
    test on each fold's training rows of the raw columns (the same folds)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = frames["scale1"][S1].to_numpy(), frames["scale1"]["y1"].to_numpy(np.float64)
    for split in cmp.SPLITS:
        fold = supervised.folds[(split, "scale1")]["ridge"]
        pred = np.zeros(len(y))
        for f in range(3):
            model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
            pred[fold == f] = model.fit(x[fold != f], y[fold != f]).predict(x[fold == f])
        row = supervised.table.query("split == @split and target == 'scale1.y1' and "
                                     "model == 'ridge'").iloc[0]
        assert row.mae == pytest.approx(np.abs(pred - y).mean(), rel=1e-4)
    res = supervised.fits["random"].results["scale1"]
    feats = sup.design_matrices(res)
    y, fold = res.data.targets["y1"], res.folds.fold_of_row
    a = sup.sklearn_oof("random forest", feats, y, fold)
    np.testing.assert_array_equal(a, sup.sklearn_oof("random forest", feats, y, fold))


def test_single_scale_configs():
    cfg = chain_config()
    raw = configs.single_scale_config(cfg, "scale2", raw_upstream=True)[0].scales[0]
    own = configs.single_scale_config(cfg, "scale2", raw_upstream=False)[0].scales[0]
    assert [(g.name, g.kind) for g in raw.inputs] == [("desc", "numeric"), ("own", "numeric"),
                                                      ("kind", "categorical")]
    assert raw.group("desc").columns == tuple(S1)
    assert [h.name for h in raw.heads] == ["y2", "desc", "own", "kind"]
    assert [g.name for g in own.inputs] == ["own", "kind"]
    assert [h.name for h in own.heads] == ["y2", "own", "kind"]
    assert configs.group_columns(cfg, "scale2", "group_rows") == tuple(S2 + ["s2_kind"] + S1)
    assert configs.group_columns(cfg, "scale2", "group_composition") == tuple(S1)
    assert configs.group_columns(cfg, "scale1", "group_composition") == tuple(S1)
    # the honest splits fit the scalers on training rows; random keeps the config's (all)
    assert [configs.split_config(cfg, sp).scale("scale2").scaler for sp in cmp.SPLITS] == \
        ["all" if sp == "random" else "train" for sp in cmp.SPLITS]


def recon_config(epochs: int = 2):
    train = {"epochs": epochs, "batch_size": 64}
    cv = {"kind": "kfold", "n_splits": 3, "random_state": 0}
    return parse_config({"scales": {
        "a": {"data": "<mem>", "inputs": {"x": {"kind": "numeric", "columns": S1[:4]}},
              "encoder": {"hidden": [4], "latent_size": 2, "latent_activation": "linear"},
              "heads": {"x": {"kind": "reconstruction", "input": "x", "hidden": [4]}},
              "training": train, "cv": cv},
        "b": {"data": "<mem>", "inputs": {"x": {"kind": "numeric", "columns": S2},
                                          "a_latent": {"kind": "latent", "scale": "a"}},
              "encoder": {"hidden": [6], "latent_size": 3, "latent_activation": "linear"},
              "heads": {"x": {"kind": "reconstruction", "input": "x", "hidden": [6]},
                        "a_latent": {"kind": "reconstruction", "input": "a_latent"}},
              "training": train, "cv": cv}}}, "recon.toml")


@pytest.fixture(scope="module")
def recon():
    frame = make_nested_data(45, n_scales=2, seed=3)["scale2"]
    frames = {"a": frame, "b": frame}
    return cmp.compare(recon_config(), frames=frames, seeds=2), frames


def test_reconstruction_table(recon):
    result, _ = recon
    assert result.kind == "reconstruction"
    assert list(result.table.columns) == cmp.RECON_COLUMNS
    assert list(result.table.model) == ["NestedAE (mean of scales)",
                                        "NestedAE (raw inputs only)", "NestedAE scale 'a'",
                                        "NestedAE scale 'b'", "single AE"]
    t = result.table.set_index("model")
    nested = (t.loc["NestedAE scale 'a'", "val_mae_mean"]
              + t.loc["NestedAE scale 'b'", "val_mae_mean"]) / 2
    assert t.loc["NestedAE (mean of scales)", "val_mae_mean"] == pytest.approx(nested)
    # raw inputs only: a's 4 columns and b's 6 own columns, weighted by width, per seed
    batches = result.fits["nested"]
    raw = [(4 * batches["a"].metrics[s]["heads"]["x"]["pooled_val"]["mae"]
            + 6 * batches["b"].metrics[s]["heads"]["x"]["pooled_val"]["mae"]) / 10
           for s in range(2)]
    assert t.loc["NestedAE (raw inputs only)", "val_mae_mean"] == pytest.approx(np.mean(raw))
    single = configs.single_autoencoder_config(recon_config()).scales[0]
    assert single.group("all_inputs").columns == tuple(S1[:4] + S2)
    assert single.encoder.latent_size == 3


def test_seed_batch_models_do_not_depend_on_their_position(recon):
    """Model (seed s, fold f) starts from seed s and shuffles with stream f wherever it sits in
    the batch, so it is the model a plain fit_config with training.seed = s trains."""
    result, frames = recon
    batch = result.fits["nested"]["a"]
    plan = plan_chain(recon_config(), frames=frames)
    swapped = reconstruction.fit_seeds(recon_config(), batch.spec, plan, np.array([1, 0]), {})
    for s, t in ((0, 1), (1, 0)):
        a = batch.metrics[s]["heads"]["x"]["pooled_val"]["mae"]
        b = swapped.metrics[t]["heads"]["x"]["pooled_val"]["mae"]
        assert a == pytest.approx(b, rel=1e-5)
    assert batch.metrics[0]["heads"]["x"]["pooled_val"]["mae"] != \
        pytest.approx(batch.metrics[1]["heads"]["x"]["pooled_val"]["mae"], rel=1e-6)


def test_each_seed_of_a_downstream_scale_gets_its_own_upstream_latents(recon):
    result, frames = recon
    up, down = result.fits["nested"]["a"], result.fits["nested"]["b"]
    cfg = recon_config()
    group = down.spec.group("a_latent")
    n_folds = down.n_folds
    latents = [feed_latents({"a": up.seed_scale(s)}, {s.name: s for s in cfg.scales},
                            cfg.chain, group, down.data.frame, "test", down.feeders["a"])
               for s in range(2)]
    assert not np.allclose(latents[0], latents[1])
    given = np.asarray(down.data.inputs["a_latent"])  # (seeds x folds, N, L)
    for s in range(2):
        np.testing.assert_allclose(given[s * n_folds:(s + 1) * n_folds],
                                   np.broadcast_to(latents[s], (n_folds, *latents[s].shape[-2:])))
        want = fit_stats(latents[s], down.folds.train, name="a_latent", source="test")
        got = np.asarray(down.fit.batch.stats["a_latent"]["mean"])[s * n_folds:(s + 1) * n_folds]
        np.testing.assert_allclose(got, want["mean"], rtol=1e-5, atol=1e-6)


def test_cli_registration_and_bad_split(tmp_path):
    from nested_ae_jax.cli import build_parser, compare as compare_cli

    args = build_parser().parse_args(["compare", "a.toml", "--cv", "random,group_rows",
                                      "--epochs", "5", "--out", str(tmp_path)])
    assert args.func is compare_cli.run and args.epochs == 5 and args.seeds == 10
    args.cv = "random,grouped"
    with pytest.raises(ConfigError, match="unknown split 'grouped'"):
        compare_cli.run(args)


def test_write_comparison(supervised, tmp_path):
    paths = report.write_comparison(supervised, tmp_path / "out")
    assert [p.name for p in paths] == ["compare.md", "compare.csv", "folds.csv"]
    back = pd.read_csv(paths[1])
    assert list(back.columns) == cmp.TABLE_COLUMNS and len(back) == len(supervised.table)
    folds = pd.read_csv(paths[2])
    assert set(folds.split) == set(configs.SPLITS) and len(folds) == len(configs.SPLITS) * (40 + 90)


def test_experiment_configs():
    from pathlib import Path

    from nested_ae_jax.config import load_config

    root = Path(__file__).resolve().parents[1] / "experiments"
    pce = load_config(root / "perovskite/nested_pce.toml")
    lat2 = load_config(root / "perovskite/nested_pce_latent2.toml")
    assert lat2.scale("device").encoder.latent_size == 2
    assert lat2.scale("atomic") == pce.scale("atomic")
    rows = configs.group_columns(pce, "device", "group_rows")
    comp = configs.group_columns(pce, "device", "group_composition")
    assert len(rows) == 17 and {"ETL_stack_sequence", "HTL_stack_sequence"} <= set(rows)
    assert len(comp) == 15 and "C_ion_radius" in comp and set(comp) < set(rows)
    assert configs.group_columns(pce, "atomic", "group_composition") == \
        pce.scale("atomic").inputs[0].columns
    raw = configs.single_scale_config(pce, "device", raw_upstream=True)[0].scales[0]
    assert raw.group("descriptors").columns == comp
    for name in ("nested_smooth", "nested_noisy"):
        cfg = load_config(root / f"synthetic/{name}.toml")
        assert not cmp.is_supervised(cfg)
        ae1, ae2 = cfg.scales
        assert (ae1.encoder.hidden, ae1.encoder.latent_size) == ((4, 3), 2)
        assert (ae2.encoder.hidden, ae2.encoder.latent_size) == ((11, 8, 6), 5)
        single = configs.single_autoencoder_config(cfg).scales[0]
        assert single.group("all_inputs").columns == tuple(f"f{i}" for i in range(1, 14))
        assert single.encoder.latent_size == 5


def test_raw_baseline_leaves_out_upstream_columns_constant_on_the_downstream_rows(frames,
                                                                                 tmp_path):
    """A downstream data set in which one upstream descriptor never varies (a site that is
    always the same element): the raw-descriptor single AE drops that column, says so, and
    the comparison runs."""
    f2 = frames["scale2"].copy()
    f2[S1[2]] = 0.25
    # the fixture's config: its compiled programs serve every model but the raw one
    result = cmp.compare(chain_config(), frames={"scale1": frames["scale1"],
                                                         "scale2": f2},
                         splits=("random",), out=tmp_path)
    assert len(result.notes) == 1 and S1[2] in result.notes[0]
    assert S1[2] in (tmp_path / "compare.md").read_text()
    raw = result.table[(result.table.model == "single AE (raw)")]
    assert len(raw) == 1 and np.isfinite(raw.mae).all()
    cfg, dropped = configs.single_scale_config(chain_config(), "scale2", raw_upstream=True,
                                               frame=f2)
    assert dropped == [S1[2]]
    assert cfg.scales[0].group("desc").columns == tuple(c for c in S1 if c != S1[2])


def test_tuned_baselines_join_the_table_on_the_same_folds(frames, tmp_path):
    """compare --tune: each tuned baseline is one more row per target and split, scored on the
    chain's folds; what every outer split chose is written beside the table."""
    result = sup.compare_supervised(chain_config(), frames=frames, splits=("random",),
                                    tuned=("ridge (tuned)",), tune_trials=2)
    t = result.table
    assert list(t[t.target == "scale2.y2"].model)[-1] == "ridge (tuned)"
    assert (t[t.model == "ridge (tuned)"].n_folds == 3).all()
    np.testing.assert_array_equal(result.folds[("random", "scale2")]["ridge (tuned)"],
                                  result.folds[("random", "scale2")]["NestedAE"])
    paths = report.write_comparison(result, tmp_path)
    chosen = pd.read_csv(paths[-1])
    assert paths[-1].name == "tuned_baselines.csv" and len(chosen) == 2 * 3  # targets x folds
    assert {"target", "split", "model", "fold", "alpha", "inner_mae"} <= set(chosen.columns)


def test_tune_needs_regression_heads():
    cfg = parse_config({"scales": {"s": {
        "data": "<mem>", "inputs": {"x": {"kind": "numeric", "columns": ["a", "b"]}},
        "heads": {"x": {"kind": "reconstruction", "input": "x"}}}}}, "recon.toml")
    with pytest.raises(ConfigError, match="--tune tunes regression baselines"):
        cmp.compare(cfg, tune=True)
    with pytest.raises(ConfigError, match="--tune-trials 0"):
        cmp.compare(cfg, tune=True, tune_trials=0)
