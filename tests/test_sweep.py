"""Sweeps: grids become as few compiled calls as the shapes allow, and score like `train`."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import override, parse_config
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.runner import fit_config
from nested_ae_jax.sweep import combinations, parse_grid, sweep


def test_grid_values_parse_as_toml_and_brackets_do_not_split():
    grid = parse_grid(["encoder.l1=0,1e-3", "encoder.hidden=[8],[16, 16]",
                       "encoder.activation=tanh,relu"])
    assert grid == {"encoder.l1": [0, 1e-3], "encoder.hidden": [[8], [16, 16]],
                    "encoder.activation": ["tanh", "relu"]}
    assert len(combinations(grid)) == 8
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        parse_grid(["encoder.l1"])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    up = pd.DataFrame(rng.normal(size=(36, 3)), columns=["a", "b", "c"])
    up["y"] = up.a - up.b * up.c
    down = pd.DataFrame(rng.normal(size=(40, 4)), columns=["a", "b", "c", "d"])
    down["y"] = np.abs(down.a + down.d)
    up.to_csv(tmp / "up.csv", index=False)
    down.to_csv(tmp / "down.csv", index=False)
    first = tiny_scale("up", data=str(tmp / "up.csv"), epochs=5)
    second = tiny_scale("down", data=str(tmp / "down.csv"), epochs=5)
    second["inputs"] = {"up_latent": {"kind": "latent", "scale": "up"},
                        "x": {"kind": "numeric", "columns": ["d"]}}
    return parse_config({"chain": {"split": "independent", "feed": "all_rows"},
                         "scales": {"up": first, "down": second}},
                        str(tmp / "c.toml"))


def test_a_one_point_sweep_scores_exactly_like_train(chain):
    trained = fit_config(chain).results["down"].metrics["heads"]["y"]["pooled_val"]
    swept = sweep(chain, {"encoder.l1": [0.01]})  # the config's own value
    assert swept.runs.loc[0, "y.mae"] == pytest.approx(trained["mae"], rel=1e-6)
    assert swept.runs.loc[0, "y.r2"] == pytest.approx(trained["r2"], rel=1e-6)


def test_numeric_settings_share_one_program_and_shapes_split_it(chain):
    numeric = sweep(chain, {"encoder.l1": [0.0, 0.01], "heads.y.dropout": [0.0, 0.2]},
                    seeds=2)
    assert numeric.n_groups == 1 and len(numeric.runs) == 8 and numeric.n_models == 24
    assert numeric.runs["y.mae"].nunique() == 8  # every combination trained differently
    assert numeric.best["y.mae"] == numeric.runs["y.mae"].min()
    shapes = sweep(chain, {"encoder.hidden": [[4], [6]]})
    assert shapes.n_groups == 2
    assert set(shapes.folds["fold"]) == {0, 1, 2}


def test_latent_sizes_share_one_masked_program_and_train_to_the_narrow_numbers(chain):
    """Latent sizes 1..3 train in the program of size 3, each model masked to its own size
    and started from its own narrow network's weights: the figures of separate runs of each
    size (dropout on, so the noise streams must match too)."""
    grid = {"encoder.latent_size": [1, 2, 3], "heads.y.dropout": [0.1]}
    masked = sweep(chain, grid)
    assert masked.n_groups == 1 and len(masked.runs) == 3
    for size in (1, 2, 3):
        alone = sweep(chain, {"encoder.latent_size": [size], "heads.y.dropout": [0.1]})
        np.testing.assert_allclose(masked.runs.loc[size - 1, ["y.mae", "y.rmse"]].to_numpy(float),
                                   alone.runs.loc[0, ["y.mae", "y.rmse"]].to_numpy(float),
                                   rtol=2e-5)
    assert masked.runs["y.mae"].nunique() == 3


def test_shorter_training_lengths_read_from_one_run_score_like_runs_of_that_length(
        chain, monkeypatch):
    """lengths=(2, 5): each combination is scored after 2 and after 5 epochs of one run
    (dropout on, chunks of 3 epochs, so a length falls inside a chunk): the figures of
    separate runs of 2 and of 5 epochs; the swept scale trains once, to 2 epochs and on."""
    from nested_ae_jax import fitting

    calls, train = [], fitting.train_models

    def recording(*args, **kw):
        calls.append((kw["epochs"], kw["state"] is not None))
        return train(*args, **kw)

    grid, lines = {"heads.y.dropout": [0.0, 0.1]}, []
    with monkeypatch.context() as m:
        m.setattr(fitting, "train_models", recording)
        both = sweep(override(chain, {"down.training.chunk_epochs": 3}), grid, lengths=(2, 5),
                     progress=lines.append)
    assert calls == [(5, False), (2, False), (5, True)]  # upstream, then one resumed run
    shown = [re.search(r"epoch (\d+)/5 .* ([\d.]+)s$", x) for x in lines if "[down" in x]
    assert [int(m[1]) for m in shown] == [2, 5]
    assert both.runs["training.epochs"].tolist() == [2, 5, 2, 5]
    cols = ["y.mae", "y.rmse", "x.mae"]
    for epochs in (2, 5):
        alone = sweep(override(chain, {"down.training.epochs": epochs}), grid)
        np.testing.assert_allclose(both.runs[both.runs["training.epochs"] == epochs][cols]
                                   .to_numpy(float), alone.runs[cols].to_numpy(float),
                                   rtol=2e-5)
    assert both.runs["y.mae"].nunique() == 4
    with pytest.raises(ConfigError, match=r"training lengths \[6\] are not whole epochs "
                       "from 1 to the 5 trained"):
        sweep(chain, grid, lengths=(2, 6))
    with pytest.raises(ConfigError, match="do not also sweep training.epochs"):
        sweep(chain, {"training.epochs": [3, 5]}, lengths=(2,))


def test_sweep_refuses_what_it_cannot_score(chain):
    with pytest.raises(ConfigError, match="has no key 'l3'"):
        sweep(chain, {"encoder.l3": [1.0]})
    with pytest.raises(ConfigError, match="no validation rows"):
        sweep(chain, {"cv.kind": ["none"]})
    with pytest.raises(ConfigError, match="ensemble > 1 is not swept"):
        sweep(chain, {"training.ensemble": [1, 3]})


def _recomputed(result, y: np.ndarray, head: str):
    """The nested choice and the outer MAE recomputed with numpy from the nested models' own
    predictions on the sweep's own masks: per outer fold, the setting with the lowest pooled
    inner MAE (argmin), then the chosen outer models' predictions pooled over the outer rows."""
    nf, per = result.nested_folds, result.nested_folds.n_inner + 1
    preds = [np.asarray(out.heads[head])[..., 0] for out in result.nested_outputs]  # (M, N)
    inner = np.array([[np.abs(p[o * per:o * per + per - 1] - y)[nf.val[o * per:o * per + per - 1]
                                                                 > 0].mean()
                       for o in range(nf.n_outer)] for p in preds])  # (settings, K)
    chosen = inner.argmin(axis=0)
    errors = np.concatenate([np.abs(preds[c][o * per + per - 1] - y)[nf.val[o * per + per - 1]
                                                                     > 0]
                             for o, c in enumerate(chosen)])
    return chosen, inner[chosen, np.arange(nf.n_outer)], errors.mean()


def test_nested_cv_scores_the_chosen_setting_on_rows_that_took_no_part_in_choosing(chain):
    """--outer-folds: per outer fold, the setting with the best pooled inner error is chosen
    and its outer model is scored on the outer validation rows; choice and figures are
    recomputed here with numpy from the models' predictions on the sweep's own masks."""
    grid = {"encoder.l1": [0.0, 0.01]}
    result = sweep(chain, grid, seeds=2, outer_folds=3)
    n, nf = result.nested, result.nested_folds
    assert (n["outer_folds"], n["inner_folds"]) == (3, 3)
    assert result.n_models == 4 * (3 + 3 * 4) and result.n_groups == 1
    settings = [(l1, s) for l1 in grid["encoder.l1"] for s in (0, 1)]  # combinations' order
    chosen, inner, outer = _recomputed(result, pd.read_csv(chain.scale("down").data).y.to_numpy(),
                                       "y")
    assert [(r["encoder.l1"], r["training.seed"]) for _, r in result.outer.iterrows()] == \
        [settings[c] for c in chosen]
    assert result.outer["inner y.mae"].to_numpy() == pytest.approx(inner, rel=1e-5)
    assert n["outer"] == pytest.approx(outer, rel=1e-5)
    assert n["inner"] == pytest.approx(inner.mean(), rel=1e-5)
    # every row is an outer validation row once; inner models never touch their outer fold
    assert (nf.val[3::4].sum(axis=0) == 1).all()
    for o in range(3):
        inner_rows = nf.train[o * 4:o * 4 + 3] + nf.val[o * 4:o * 4 + 3]
        assert not inner_rows[:, nf.outer == o].any()
        assert (nf.val[o * 4:o * 4 + 3].sum(axis=0) == (nf.outer != o)).all()


def _probe(tmp, split: str):
    """Two scales on the same 240 rows: the downstream target is the upstream target plus 1 %
    noise and the downstream sees only the upstream latent and a noise column, so its honest
    error cannot be much below the upstream's own out-of-fold error. The upstream (wide,
    300 epochs) memorises its noisy target: latents from a model that trained on a row leak
    that row's target (the nested CV of 6ccc37b, upstream trained once: outer/upstream ratio
    0.74 in independent mode, inner/upstream 0.76 with matched folds; honest: 0.97, 0.93)."""
    rng = np.random.default_rng(0)
    f = pd.DataFrame(rng.normal(size=(240, 4)), columns=["a", "b", "c", "noise"])
    f["y"] = f.a + rng.normal(size=240)
    f["y2"] = f.y + 0.01 * f.y.std() * rng.normal(size=240)
    f.to_csv(tmp / "probe.csv", index=False)
    up = tiny_scale("up", data=str(tmp / "probe.csv"), epochs=300, batch=32)
    up["encoder"] = {"latent_size": 2, "hidden": [64]}
    up["heads"] = {"y": {"kind": "regression", "target": "y", "hidden": [64]}}
    down = tiny_scale("down", data=str(tmp / "probe.csv"), epochs=300, batch=32)
    down["inputs"] = {"z": {"kind": "latent", "scale": "up"},
                      "n": {"kind": "numeric", "columns": ["noise"]}}
    down["encoder"] = {"latent_size": 2}
    down["heads"] = {"y2": {"kind": "regression", "target": "y2", "hidden": [8]}}
    for s in (up, down):
        s["training"].update(learning_rate=0.01, chunk_epochs=300, eval_every=300)
    chain = {"split": split, **({"feed": "all_rows"} if split == "independent" else {})}
    return parse_config({"chain": chain, "scales": {"up": up, "down": down}},
                        str(tmp / "probe.toml")), f


@pytest.mark.slow
@pytest.mark.parametrize("split", ["independent", "matched"])
def test_nested_cv_of_a_chain_is_not_flattered_by_its_upstream(tmp_path, monkeypatch, split):
    """Every nested model's upstream models trained without its validation entities: the
    outer error stays at the upstream's own out-of-fold error (ratio >= 0.9) in both split
    modes, no nested validation row is leaky, and the sweep's own folds report the leaky
    rows as `train` does (independent + all_rows: every row)."""
    import nested_ae_jax.sweep as sweep_module

    cfg, frame = _probe(tmp_path, split)
    fits = []  # the sweep's own upstream fit (runner.fit_config, as `train` runs it)
    monkeypatch.setattr(sweep_module, "fit_config",
                        lambda *a, **k: fits.append(fit_config(*a, **k)) or fits[-1])
    result = sweep(cfg, {"training.learning_rate": [0.01, 0.003]}, outer_folds=3)
    oof = fits[0].results["up"].metrics["heads"]["y"]["pooled_val"]["mae"]
    assert result.nested["outer"] / oof >= 0.9
    assert result.nested["inner"] / oof >= 0.9  # inner models' upstream held out too
    assert result.chain["nested_leaky_val_rows"] == 0
    assert result.chain["scales"]["down"] == {
        "val_rows": 240, "leaky_val_rows": 240 if split == "independent" else 0}
    chosen, inner, outer = _recomputed(result, frame.y2.to_numpy(), "y2")
    assert result.nested["outer"] == pytest.approx(outer, rel=1e-5)
    assert list(result.outer["training.learning_rate"]) == [[0.01, 0.003][c] for c in chosen]
    if split == "matched":  # the outer folds are the chain's matched folds
        from nested_ae_jax.runner import plan_chain
        assert (result.nested_folds.outer == plan_chain(cfg).fold_ids["down"]).all()


def test_nested_cv_refuses_epochs_chosen_on_the_outer_rows(chain):
    with pytest.raises(ConfigError, match="select = 'best'.*nested"):
        sweep(chain, {"training.select": ["best"]}, outer_folds=3)
    with pytest.raises(ConfigError, match="scales.up.training.select"):
        sweep(override(chain, {"up.training.select": "best"}), {"encoder.l1": [0.0]},
              outer_folds=3)


def test_grid_keys_may_name_the_swept_scale_and_other_scales_are_refused():
    from nested_ae_jax.sweep import relative_keys

    up, down = tiny_scale("up"), tiny_scale("down")
    cfg = parse_config({"scales": {"up": up, "down": down}})
    grid = parse_grid(["down.encoder.l1=0,0.1", "heads.y.dropout=0"])
    assert relative_keys(grid, cfg) == {"encoder.l1": [0, 0.1], "heads.y.dropout": [0]}
    assert relative_keys(parse_grid(["up.encoder.l1=0"]), cfg, "up") == {"encoder.l1": [0]}
    with pytest.raises(ConfigError, match="relative to the swept scale 'down'.*--scale up"):
        relative_keys(parse_grid(["up.encoder.l1=0"]), cfg)


def test_nested_cv_fits_every_scaler_of_the_chain_on_training_rows():
    """A scaler fitted on all rows would see the outer validation rows: under nested CV the
    swept scale and its upstream scales standardise on each model's training rows."""
    from nested_ae_jax.sweep import _train_row_scalers

    up, down = tiny_scale("up", scaler="all"), tiny_scale("down", scaler="all")
    down["inputs"]["z"] = {"kind": "latent", "scale": "up"}
    other = tiny_scale("other", scaler="all")
    cfg = parse_config({"scales": {"up": up, "down": down, "other": other}})
    honest, changed = _train_row_scalers(cfg, "down")
    assert changed == ["up", "down"]
    assert [honest.scale(n).scaler for n in ("up", "down", "other")] == ["train", "train",
                                                                          "all"]


def test_outer_folds_may_choose_settings_whose_latents_differ_in_width(tmp_path, tiny_frame):
    """Settings of different compiled groups carry latents of different widths (each group
    its widest): outer folds choosing among them are scored all the same, pooled MAE and
    the ensemble's mean prediction recomputed with numpy."""
    from nested_ae_jax.model import ScaleOutputs
    from nested_ae_jax.selection import nested_folds, select

    spec = parse_config({"scales": {"s": tiny_scale()}}, str(tmp_path / "c.toml")).scales[0]
    rng = np.random.default_rng(0)
    n, k, inner = 30, 3, 2
    nf = nested_folds(np.arange(n) % k, inner, 0)
    y = rng.normal(size=(n, 1))
    m = k * (inner + 1)
    outputs = [ScaleOutputs(np.zeros((m, n, width)), {"x": np.zeros((m, n, 3))},
                            {"y": y + rng.normal(scale=0.1, size=(m, n, 1)),
                             "x": np.zeros((m, n, 3))}) for width in (2, 4)]
    allowed = np.array([[True, False, True], [False, True, True]])  # fold 0 must take 0 ...
    summary, table, _ = select(spec, [{"a": 0}, {"a": 1}], outputs, {"y": y}, nf, "y.mae",
                               False, allowed, ensemble=2)
    chosen = table.setting.to_numpy()
    assert chosen[0] == 0 and chosen[1] == 1  # ... fold 1 setting 1: both widths scored
    last = inner  # the outer model of each outer split
    err = np.concatenate([outputs[chosen[o]].heads["y"][o * (inner + 1) + last][nf.outer == o]
                          - y[nf.outer == o] for o in range(k)])
    assert summary["outer"] == pytest.approx(np.abs(err).mean(), rel=1e-6)
    members = [np.flatnonzero(allowed[:, o]) for o in range(k)]  # no ensemble takes more
    assert [sorted(c) for c in summary["ensemble"]["chosen"]] == [[0], [1], [0, 1]]
    mean = np.concatenate([np.mean([outputs[s].heads["y"][o * (inner + 1) + last]
                                    for s in members[o]], axis=0)[nf.outer == o]
                           - y[nf.outer == o] for o in range(k)])
    assert summary["ensemble"]["outer"] == pytest.approx(np.abs(mean).mean(), rel=1e-6)


def test_a_setting_that_diverges_scores_nan_ranks_last_and_never_enters_an_ensemble(chain):
    """Learning rate 1e30: its training loss goes non-finite in epoch 1. The other settings
    of the same compiled program train on; the diverged one's metrics are NaN, it is never
    the best nor any outer split's choice, and each outer split's ensemble of 3 is the
    ensemble of the 2 that did not diverge (the sweep without it, --ensemble 2)."""
    grid = {"training.learning_rate": [3e-3, 1e30, 1e-2]}
    r = sweep(chain, grid, outer_folds=3, ensemble=3)
    assert r.n_groups == 1
    bad = (r.runs["training.learning_rate"] == 1e30).to_numpy()
    assert r.runs.loc[bad, "y.mae"].isna().all() and (r.runs.loc[bad, "diverged"] > 0).all()
    assert (r.runs.loc[~bad, "diverged"] == 0).all()
    assert np.isfinite(r.runs.loc[~bad, "y.mae"]).all()
    alone = sweep(chain, {"training.learning_rate": [3e-3, 1e-2]}, outer_folds=3, ensemble=2)
    np.testing.assert_allclose(r.runs.loc[~bad, "y.mae"], alone.runs["y.mae"], rtol=1e-5)
    assert r.best["training.learning_rate"] == alone.best["training.learning_rate"]
    assert (r.outer["training.learning_rate"] != 1e30).all()
    assert r.nested["outer"] == pytest.approx(alone.nested["outer"], rel=1e-5)
    assert r.nested["ensemble"]["chosen"] == [[(0, 2)[i] for i in members]  # alone's 0, 1
                                              for members in alone.nested["ensemble"]["chosen"]]
    assert r.nested["ensemble"]["outer"] == pytest.approx(alone.nested["ensemble"]["outer"],
                                                          rel=1e-5)


def test_a_sweep_where_everything_diverged_says_so_in_one_line(chain):
    from nested_ae_jax.errors import NestedAEError

    with pytest.raises(NestedAEError, match=r"all 2 setting\(s\) it may choose diverged") as e:
        sweep(chain, {"training.learning_rate": [1e30, 1e31]})
    assert "\n" not in str(e.value) and "learning_rate" in str(e.value)


def test_sweeps_sharing_a_reuse_dict_train_the_upstream_once_and_score_as_fresh(
        chain, monkeypatch):
    """tune's rungs: the upstream models (plain and nested) and the swept scale's data are
    made by the first sweep and read back by the next, whose figures equal a fresh sweep's."""
    from nested_ae_jax import sweep as sweep_module

    calls, prepare = [], sweep_module._prepare
    monkeypatch.setattr(sweep_module, "_prepare",
                        lambda *a, **k: calls.append(1) or prepare(*a, **k))
    reuse = {}
    first = sweep(chain, {"encoder.l1": [0.0]}, outer_folds=3, reuse=reuse)
    again = sweep(chain, {"encoder.l1": [0.0, 0.01]}, outer_folds=3, reuse=reuse)
    assert len(calls) == 2 - 1 and first.prepare_seconds > 0 and again.prepare_seconds == 0
    fresh = sweep(chain, {"encoder.l1": [0.0, 0.01]}, outer_folds=3)
    assert len(calls) == 2
    np.testing.assert_allclose(again.runs["y.mae"], fresh.runs["y.mae"], rtol=1e-6)
    assert again.nested["outer"] == pytest.approx(fresh.nested["outer"], rel=1e-6)
    assert again.chain == fresh.chain


def test_progress_seconds_run_on_one_clock_across_the_resumed_runs_of_training_lengths(
        chain, monkeypatch):
    """The fit's clock ticks 10 s per reading: each line shows the seconds since the fit
    began, so they grow across the resumed run of the second length, never restarting."""
    import itertools
    import types

    from nested_ae_jax import fitting

    monkeypatch.setattr(fitting, "time", types.SimpleNamespace(
        perf_counter=itertools.count(0.0, 10.0).__next__))
    lines = []
    sweep(override(chain, {"down.training.chunk_epochs": 3}), {"heads.y.dropout": [0.0]},
          lengths=(2, 5), progress=lines.append)
    seconds = [float(re.search(r"([\d.]+)s$", x)[1]) for x in lines if "[down" in x]
    assert len(seconds) == 2 and seconds[0] >= 10 and seconds[1] > seconds[0]
    assert all(v % 10 == 0 for v in seconds)  # the fit's clock, not train_models' own


def test_a_setting_whose_outer_model_diverged_is_neither_chosen_nor_in_an_ensemble_there(
        tmp_path):
    """Setting 0 has the better inner error everywhere, but its outer model of fold 0 is
    marked diverged (NaN on every row, as fit_models marks one): fold 0 chooses setting 1,
    its ensemble of 2 holds setting 1 alone, and both figures are finite and recomputed."""
    from nested_ae_jax.model import ScaleOutputs
    from nested_ae_jax.selection import nested_folds, select

    spec = parse_config({"scales": {"s": tiny_scale()}}, str(tmp_path / "c.toml")).scales[0]
    rng = np.random.default_rng(1)
    n, k, inner = 30, 3, 2
    nf, per = nested_folds(np.arange(n) % k, inner, 0), inner + 1
    y = rng.normal(size=(n, 1))
    preds = [y + rng.normal(scale=sd, size=(k * per, n, 1)) for sd in (0.05, 0.3)]
    preds[0][inner] = np.nan  # outer model of fold 0, setting 0
    outputs = [ScaleOutputs(np.zeros((k * per, n, 2)), {"x": np.zeros((k * per, n, 3))},
                            {"y": p, "x": np.zeros((k * per, n, 3))}) for p in preds]
    summary, table, errors = select(spec, [{"a": 0}, {"a": 1}], outputs, {"y": y}, nf,
                                    "y.mae", False, None, ensemble=2)
    assert table.setting.tolist() == [1, 0, 0] and np.isnan(errors[0, 0])
    assert summary["ensemble"]["chosen"] == [[1], [0, 1], [0, 1]]
    last = [o * per + inner for o in range(k)]
    single = np.concatenate([preds[c][last[o]][nf.outer == o] - y[nf.outer == o]
                             for o, c in enumerate([1, 0, 0])])
    assert summary["outer"] == pytest.approx(np.abs(single).mean(), rel=1e-6)
    mean = np.concatenate([np.mean([preds[s][last[o]] for s in m], axis=0)[nf.outer == o]
                           - y[nf.outer == o] for o, m in enumerate([[1], [0, 1], [0, 1]])])
    assert summary["ensemble"]["outer"] == pytest.approx(np.abs(mean).mean(), rel=1e-6)
