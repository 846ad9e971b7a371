"""nested-ae tune: Sobol spaces, successive halving per race, honest nested-CV selection."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import load_config, override, parse_config
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.runner import fit_config
from nested_ae_jax.tune import (Dim, Rung, Space, default_space, load_space, sample, schedule,
                                survivors, training_lengths, tune, within_budget,
                                write_outputs)


def test_schedule_divides_settings_and_multiplies_epochs_by_eta():
    assert schedule(27, 81, eta=3) == [(27, 3), (9, 9), (3, 27), (1, 81)]
    assert schedule(4, 9, eta=2, rungs=2) == [(4, 4), (2, 9)]


def test_training_lengths_split_the_epochs_evenly_on_whole_chunks():
    assert training_lengths(1500, 4, chunk=100).tolist() == [400, 800, 1100, 1500]
    assert training_lengths(8, 4, chunk=100).tolist() == [2, 4, 6, 8]
    assert training_lengths(8, 4, chunk=5).tolist() == [5, 8]  # duplicates dropped
    assert training_lengths(8, 1, chunk=5).tolist() == [8]


def test_halving_keeps_the_planted_best_setting_and_each_race_reads_only_its_scores():
    rng = np.random.default_rng(0)
    alive = np.ones((27, 4), bool)
    for rung in schedule(27, 81, eta=3)[1:]:
        scores = rng.uniform(1.0, 2.0, size=alive.shape)
        scores[13] = 0.9  # the planted best, in every race, at every rung
        before = alive.copy()
        alive = survivors(scores, alive, rung.keep)
        assert (alive.sum(axis=0) == rung.keep).all() and not (alive & ~before).any()
        # numpy recomputation: per race, the `keep` lowest scores among the alive
        for j in range(4):
            expect = np.flatnonzero(before[:, j])[np.argsort(scores[before[:, j], j])[:rung.keep]]
            assert set(np.flatnonzero(alive[:, j])) == set(expect)
        poisoned = scores.copy()
        poisoned[:, 0] = rng.uniform(size=27)  # race 0's scores change ...
        again = survivors(poisoned, before, rung.keep)
        assert (again[:, 1:] == alive[:, 1:]).all()  # ... the other races do not
    assert (np.flatnonzero(alive.any(axis=1)) == [13]).all()


def test_settings_that_diverged_survive_a_race_only_when_too_few_others_have_a_score():
    nan, inf = np.nan, np.inf
    scores = np.array([[inf, 0.3], [0.5, nan], [nan, 0.1], [0.7, 0.2]])
    alive = np.array([[True, True], [True, True], [True, True], [False, True]])
    # race 0: one alive setting has a score (1); of the two that diverged, the lower index
    assert survivors(scores, alive, 2).tolist() == [[True, False], [True, False],
                                                    [False, True], [False, True]]
    assert survivors(-scores, alive, 1, maximise=True)[:, 0].tolist() == [False, True, False,
                                                                          False]


def test_finite_members_leave_out_what_diverged_or_is_not_allowed_and_name_an_empty_race():
    from nested_ae_jax.errors import NestedAEError
    from nested_ae_jax.ranking import finite_members, top_k

    scores = np.array([[0.1, np.nan], [np.inf, 0.2], [0.3, 0.4]])
    allowed = np.array([[True, True], [True, True], [False, True]])
    top = top_k(scores, allowed, 3, maximise=False)
    assert [m.tolist() for m in finite_members(top, scores, allowed, "race {}")] == \
        [[0], [1, 2]]
    with pytest.raises(NestedAEError, match=r"^race 1: all 2 setting\(s\) it may choose "
                       "diverged"):
        lost = np.array([[0.1, np.nan], [0.2, np.inf], [0.3, 0.4]])  # race 1 may not
        only = np.array([[True, True], [True, True], [True, False]])  # take row 2
        finite_members(top_k(lost, only, 2, maximise=False), lost, only, "race {}")


def test_budget_shrinks_the_rest_of_the_plan_until_its_projection_fits():
    """1 s per setting-epoch; 4 races; 27 settings now, count(keep): alive in any race after
    each keeps ``keep``. Survivors are halved and rungs that would not narrow any race dropped,
    down to the last rung alone with one setting per race (run even when over the budget)."""
    rest = [Rung(9, 9), Rung(3, 27), Rung(1, 81)]
    count = lambda keep: min(27, 4 * keep)  # noqa: E731
    assert within_budget(rest, count, 4, 1.0, 1000) == (rest, 27 * 9 + 12 * 27 + 4 * 81)
    assert within_budget(rest, count, 4, 1.0, 500) == ([Rung(3, 9), Rung(1, 81)],
                                                       12 * 9 + 4 * 81)
    assert within_budget(rest, count, 4, 1.0, 100) == ([Rung(1, 81)], 4 * 81)
    assert within_budget(rest, count, 4, 2.0, 0) == ([Rung(1, 81)], 2 * 4 * 81)
    # --ensemble 2: no race keeps fewer than 2 (the minimum plan: 2 per race at the last rung)
    floored = [Rung(9, 9), Rung(3, 27), Rung(2, 81)]
    assert within_budget(floored, count, 4, 1.0, 100, floor=2) == ([Rung(2, 81)], 8 * 81)


def test_sobol_samples_are_seeded_and_inside_the_space(tmp_path):
    space = Space((Dim("training.learning_rate", 1e-4, 1e-2, log=True),
                   Dim("heads.y.dropout", 0.0, 0.3), Dim("training.batch_size", choices=(8, 16))))
    a, b = sample(space, 16, seed=3), sample(space, 16, seed=3)
    assert a == b and a != sample(space, 16, seed=4)
    lr = np.array([s["training.learning_rate"] for s in a])
    assert (lr >= 1e-4).all() and (lr <= 1e-2).all()
    # log-uniform: evenly spread in log10 (a Sobol point in each eighth of [-4, -2])
    assert len(np.unique(np.floor((np.log10(lr) + 4) * 4))) == 8
    assert {s["training.batch_size"] for s in a} == {8, 16}
    path = tmp_path / "space.toml"
    path.write_text('[dims."encoder.l1"]\nlow = 1e-5\nhigh = 1e-2\nlog = true\n'
                    '[dims."training.batch_size"]\nchoices = [8, 16]\n')
    assert load_space(path) == Space((Dim("encoder.l1", 1e-5, 1e-2, log=True),
                                      Dim("training.batch_size", choices=(8, 16))))
    path.write_text('[dims."encoder.l1"]\nlow = 0\nhigh = 1e-2\nlog = true\n')
    with pytest.raises(ConfigError, match="dims.encoder.l1: need numbers low <= high"):
        load_space(path)


def _config(tmp, name: str, poison: float = 0.0):
    """48 rows y = a + 2b - c; ``poison`` added to the targets of outer fold 0 (if given)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 3))
    df = pd.DataFrame(x, columns=list("abc"))
    df["y"] = x[:, 0] + 2 * x[:, 1] - x[:, 2]
    if poison:
        df.loc[_OUTER0, "y"] += poison
    df.to_csv(tmp / f"{name}.csv", index=False)
    table = tiny_scale(data=f"{name}.csv", epochs=8)  # relative: tuned.toml makes it absolute
    return parse_config({"scales": {"s": table}}, str(tmp / f"{name}.toml"))


_SPACE = Space((Dim("training.learning_rate", 1e-3, 3e-2, log=True),
                Dim("heads.y.dropout", 0.0, 0.2)))
_OUTER0: list = []


def _tune(cfg, **options):
    return tune(cfg, trials=4, eta=2, rungs=2, outer_folds=3, space=_SPACE, seed=0, **options)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    result = _tune(_config(tmp, "clean"))
    return tmp, result


@pytest.fixture(scope="module")
def ensembled(tuned):
    """--ensemble 2 on the same data (the plan keeps 2 per race at the last rung already)."""
    tmp, _ = tuned
    return _tune(_config(tmp, "clean"), ensemble=2)


def test_each_outer_split_chooses_the_argmin_of_its_inner_errors(tuned):
    """Recomputed with numpy from the last rung's nested models' predictions: per outer fold,
    the lowest pooled inner MAE among that race's survivors; the final setting the lowest
    plain-fold MAE among the final race's survivors."""
    tmp, r = tuned
    last, nf = r.last, r.last.nested_folds
    per = nf.n_inner + 1
    target = pd.read_csv(tmp / "clean.csv").y.to_numpy()
    rows = r.trials[r.trials.rung == 1].reset_index(drop=True)
    preds = [np.asarray(o.heads["y"])[..., 0] for o in last.nested_outputs]
    inner = np.array([[np.abs(p[o * per:o * per + per - 1] - target)[
        nf.val[o * per:o * per + per - 1] > 0].mean() for o in range(nf.n_outer)]
        for p in preds])  # (settings of the last rung, K)
    alive = np.array([[str(o) in row.alive_in.split() for o in range(nf.n_outer)]
                      for row in rows.itertuples()])
    best = np.where(alive, inner, np.inf).argmin(axis=0)  # candidates: (setting, length)
    assert (r.chosen == rows.setting.to_numpy()[best]).all()
    assert (r.chosen_epochs == rows.epochs.to_numpy()[best]).all()
    assert sorted(set(rows.epochs)) == [5, 8]  # --lengths 4 of 8 epochs in chunks of 5,
    assert (rows.epochs_trained == np.where(rows.epochs == 8, 8, 0)).all()  # from one run
    assert rows[[f"inner{o} y.mae" for o in range(3)]].to_numpy() == pytest.approx(inner,
                                                                                    rel=1e-5)
    final_alive = rows.alive_in.str.contains("final").to_numpy()
    cv = rows["cv y.mae"].to_numpy()
    final = np.where(final_alive, cv, np.inf).argmin()
    assert (r.final, r.final_epochs) == (rows.setting[final], rows.epochs[final])


def test_tuned_toml_holds_the_final_setting_and_train_reproduces_it(tuned, tmp_path):
    _, r = tuned
    paths = write_outputs(r, tmp_path / "out")
    cfg = load_config(paths[1])
    spec = cfg.scale("s")
    chosen = r.settings[r.final]
    assert spec.training.learning_rate == pytest.approx(chosen["training.learning_rate"])
    assert spec.heads[0].dropout == pytest.approx(chosen["heads.y.dropout"])
    assert (spec.scaler, spec.training.select) == ("train", "last")
    assert spec.training.epochs == r.final_epochs
    trained = fit_config(cfg).results["s"].metrics["heads"]["y"]["pooled_val"]["mae"]
    assert trained == pytest.approx(r.final_cv, rel=1e-5)
    doc = pd.read_csv(paths[2])
    assert len(doc) == 4 + len(r.last.runs) and set(doc.rung) == {0, 1}
    assert paths[3].name == "tune.png" and paths[3].read_bytes().startswith(b"\x89PNG")


def test_a_shorter_length_read_from_the_run_is_what_train_of_that_length_gives(tuned,
                                                                               tmp_path):
    """The final setting at 5 of its 8 epochs (a snapshot): tuned.toml with that length
    trains to the plain-fold CV the tune recorded for it; tune.json names the lengths."""
    import dataclasses

    _, r = tuned
    rows = r.trials[r.trials.rung == 1]
    short = rows[(rows.setting == r.final) & (rows.epochs == 5)]
    assert len(short) == 1 and (short.epochs_trained == 0).all()
    r5 = dataclasses.replace(r, final_epochs=5, final_cv=float(short["cv y.mae"].iloc[0]))
    paths = write_outputs(r5, tmp_path / "out")
    cfg = load_config(paths[1])
    assert cfg.scale("s").training.epochs == 5
    trained = fit_config(cfg).results["s"].metrics["heads"]["y"]["pooled_val"]["mae"]
    assert trained == pytest.approx(r5.final_cv, rel=1e-5)
    doc = json.loads(paths[0].read_text())
    assert doc["final"]["training.epochs"] == 5
    assert [c["training.epochs"] for c in doc["chosen_per_outer_split"]] == \
        r.chosen_epochs.tolist()


def test_tune_json_reports_every_head_from_the_outer_models_that_give_the_figure(tuned,
                                                                                  tmp_path):
    """Every head and every metric the sweep records, pooled and per outer fold; the target
    head's MAE and RMSE recomputed with numpy from the chosen settings' outer models."""
    tmp, r = tuned
    doc = json.loads(write_outputs(r, tmp_path / "out")[0].read_text())
    assert set(doc["heads"]) == {"y", "x"} and doc["metric"] == "y.mae"
    for head, stats in doc["heads"].items():
        assert set(stats) == {c.split(".", 1)[1] for c in r.last.runs if c.startswith(head + ".")}
    nf, per = r.last.nested_folds, r.last.nested_folds.n_inner + 1
    target = pd.read_csv(tmp / "clean.csv").y.to_numpy()
    err = np.zeros_like(target)
    for o, j in enumerate(r.outer["setting"]):
        p = np.asarray(r.last.nested_outputs[j].heads["y"])[o * per + per - 1, :, 0]
        err[nf.outer == o] = (p - target)[nf.outer == o]
    y = doc["heads"]["y"]
    assert y["mae"]["outer"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert y["mae"]["outer"] == pytest.approx(r.nested["outer"])
    assert y["rmse"]["outer"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-5)
    assert y["mae"]["per_outer_fold"] == pytest.approx(
        [np.abs(err[nf.outer == o]).mean() for o in range(3)], rel=1e-5)
    # equal outer folds (16 rows each): a pooled MAE is the mean of the folds'
    x = doc["heads"]["x"]["mae"]
    assert x["outer"] == pytest.approx(x["outer_fold_mean"], rel=1e-5) and x["outer"] > 0
    assert doc["inner"] == pytest.approx(r.nested["inner"])


def test_a_budget_spent_by_the_first_rung_still_ends_with_a_nested_cv_figure(tuned,
                                                                             tmp_path):
    """Fake clock: the first rung 'takes' 200 s of a 90 s budget; the rest is cut to the
    minimum plan (the last rung, one setting per race), said in the progress output and
    recorded in tune.json; the figure comes from that last rung at the configured epochs."""
    tmp, _ = tuned
    ticks, notes = itertools.count(0, 200), []
    r = _tune(_config(tmp, "clean"), budget_minutes=1.5, clock=lambda: next(ticks),
              progress=notes.append)
    assert schedule(4, 8, eta=2, rungs=2) == [(4, 4), (2, 8)]
    assert r.rungs == [(4, 4), (1, 8)]
    last = r.trials[(r.trials.rung == 1) & (r.trials.epochs == 8)]  # one row per setting
    races = [race for row in last.alive_in for race in row.split()]
    assert sorted(races) == ["0", "1", "2", "final"]  # one setting per race
    assert np.isfinite(r.nested["outer"]) and len(r.outer) == 3
    budget = json.loads(write_outputs(r, tmp_path / "out")[0].read_text())["budget"]
    assert budget["minutes"] == 1.5 and budget["spent_s"] == 400 and not budget["within"]
    (check,) = budget["checks"]  # the rate leaves out what later rungs reuse (data, folds)
    assert 0 < check["reused_s"] < 200
    assert budget["projected_s"] == pytest.approx(
        200 + len(last) * 8 * (200 - check["reused_s"]) / 16)
    assert check["rungs_before"] == [{"keep": 2, "epochs": 8}]
    assert check["rungs_after"] == [{"keep": 1, "epochs": 8}] and not check["fits"]
    assert budget["reduced"] == [check["note"]] and check["note"] in notes
    assert "(the budget is spent)" in check["note"] and "minimum plan" in check["note"]


def test_canary_outer_validation_targets_reach_no_inner_fit_or_choice(tuned, ensembled):
    """Targets of outer fold 0's validation rows poisoned by +1e6 (with --ensemble 2, whose
    plan is the same): outer split 0's inner errors, survivors, choice and ensemble are
    unchanged; the poison does reach the plain folds."""
    tmp, clean = tuned
    _OUTER0[:] = np.flatnonzero(clean.last.nested_folds.outer == 0).tolist()
    poisoned = _tune(_config(tmp, "poisoned", poison=1e6), ensemble=2)
    assert (poisoned.ensemble.chosen[0] == ensembled.ensemble.chosen[0]).all()
    race0 = lambda t: t[[" 0 " in f" {s} " for s in t.alive_in]]  # noqa: E731
    a, b = race0(clean.trials), race0(poisoned.trials)  # rows alive in outer split 0's race
    assert a[["rung", "setting"]].values.tolist() == b[["rung", "setting"]].values.tolist()
    assert a["inner0 y.mae"].to_numpy() == pytest.approx(b["inner0 y.mae"].to_numpy(), rel=1e-5)
    assert clean.chosen[0] == poisoned.chosen[0]
    assert clean.chosen_epochs[0] == poisoned.chosen_epochs[0]
    assert (poisoned.ensemble.chosen_epochs[0] == ensembled.ensemble.chosen_epochs[0]).all()
    b = poisoned.trials
    assert (b["cv y.mae"] > 1e4).all() and (b["inner1 y.mae"] > 1e4).all()


def _outer_predictions(r, settings_of_fold) -> np.ndarray:
    """(N,) head y of the last rung's outer models: outer fold o's rows predicted by the mean
    of settings_of_fold[o]'s outer models (the last rung's candidate indices)."""
    nf, per = r.last.nested_folds, r.last.nested_folds.n_inner + 1
    pred = np.zeros(len(nf.outer))
    for o, members in enumerate(settings_of_fold):
        p = [np.asarray(r.last.nested_outputs[j].heads["y"])[o * per + per - 1, :, 0]
             for j in members]
        pred[nf.outer == o] = np.mean(p, axis=0)[nf.outer == o]
    return pred


def test_ensemble_is_each_outer_splits_best_k_and_its_figure_is_their_mean_prediction(
        tuned, ensembled, tmp_path):
    """Recomputed with numpy: outer split o's 2 best alive settings by its inner MAE (from
    trials.csv), their outer models' mean prediction on o's validation rows, pooled MAE and
    per fold; the final ensemble the 2 best plain-fold CVs of the final race. The single
    setting's figure and choices equal the run without --ensemble (same plan)."""
    tmp, single = tuned
    r = ensembled
    assert r.nested["outer"] == single.nested["outer"] and (r.chosen == single.chosen).all()
    assert r.final == single.final
    rows = r.trials[r.trials.rung == 1].reset_index(drop=True)  # the last rung's candidates
    best = []  # per outer split, its 2 best candidates (setting, length) by its inner MAE
    for o in range(3):
        alive = rows[[str(o) in a.split() for a in rows.alive_in]]
        best.append(alive.sort_values(f"inner{o} y.mae", kind="stable").index[:2].tolist())
    expect = [rows.setting[b].tolist() for b in best]
    assert [c.tolist() for c in r.ensemble.chosen] == expect
    assert [c[0] for c in r.ensemble.chosen] == r.chosen.tolist()
    assert [n.tolist() for n in r.ensemble.chosen_epochs] == [rows.epochs[b].tolist()
                                                              for b in best]
    final_race = rows[rows.alive_in.str.contains("final")].sort_values("cv y.mae", kind="stable")
    assert r.ensemble.final.tolist() == final_race.setting[:2].tolist()
    assert r.ensemble.final_epochs.tolist() == final_race.epochs[:2].tolist()
    target = pd.read_csv(tmp / "clean.csv").y.to_numpy()
    err = _outer_predictions(r, best) - target
    outer = r.last.nested_folds.outer
    doc = json.loads(write_outputs(r, tmp_path / "out")[0].read_text())["ensemble"]
    assert doc["k"] == 2 and doc["chosen"] == expect
    assert doc["chosen_epochs"] == [n.tolist() for n in r.ensemble.chosen_epochs]
    assert [f["setting"] for f in doc["final"]] == r.ensemble.final.tolist()
    mae = doc["heads"]["y"]["mae"]
    assert mae["outer"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert mae["per_outer_fold"] == pytest.approx(
        [np.abs(err[outer == o]).mean() for o in range(3)], rel=1e-5)
    assert doc["heads"]["y"]["rmse"]["outer"] == pytest.approx(np.sqrt((err ** 2).mean()),
                                                              rel=1e-5)
    assert mae["outer"] != pytest.approx(single.nested["outer"])  # two settings, not one
    toml = (tmp_path / "out" / "tuned.toml").read_text()
    assert toml.startswith("# tune --ensemble 2: the final ensemble is settings ")
    assert "trains N seeds of it, not those settings" in toml.splitlines()[0]
    assert load_config(tmp_path / "out" / "tuned.toml").scale("s").training.learning_rate == \
        pytest.approx(r.settings[r.final]["training.learning_rate"])


def test_without_ensemble_tune_json_and_tuned_toml_have_no_ensemble(tuned, tmp_path):
    _, r = tuned
    paths = write_outputs(r, tmp_path / "out")
    assert r.ensemble is None and "ensemble" not in json.loads(paths[0].read_text())
    assert not paths[1].read_text().startswith("#")


def test_the_configured_setting_is_the_first_trial_so_a_poor_space_cannot_beat_it(tuned):
    """Trial 0 is the config's own setting, the rest are Sobol draws; with a space of
    learning rates far too small to train in 8 epochs, every race keeps trial 0 and the
    final setting is the config, whose plain-fold CV is that of plain `train`."""
    tmp, r = tuned
    cfg = _config(tmp, "clean")
    spec = cfg.scale("s")
    assert r.settings[0] == {"training.learning_rate": spec.training.learning_rate,
                             "heads.y.dropout": spec.heads[0].dropout}
    assert r.settings[1:] == sample(_SPACE, 3, seed=0)
    poor = Space((Dim("training.learning_rate", 1e-8, 1e-7, log=True),))
    t = tune(cfg, trials=3, eta=3, rungs=2, outer_folds=3, space=poor, seed=0, lengths=1)
    assert t.final == 0 and (t.chosen == 0).all()
    plain = fit_config(cfg).results["s"].metrics["heads"]["y"]["pooled_val"]["mae"]
    assert t.final_cv == pytest.approx(plain, rel=1e-5)


def test_settings_that_diverge_never_enter_a_choice_or_an_ensemble(tuned):
    """A space of learning rates near 1e30 (training goes non-finite in epoch 1) beside the
    configured setting: the tune runs on; every race and every ensemble of 2 holds trial 0
    alone, so the ensemble's figure is the single choice's. When the configured setting
    diverges too, one line says so."""
    from nested_ae_jax.errors import NestedAEError

    tmp, _ = tuned
    cfg = _config(tmp, "clean")
    wild = Space((Dim("training.learning_rate", 1e29, 1e30, log=True),))
    t = tune(cfg, trials=3, eta=3, rungs=1, outer_folds=3, space=wild, seed=0, lengths=1,
             ensemble=2)
    assert t.final == 0 and (t.chosen == 0).all()
    assert [c.tolist() for c in t.ensemble.chosen] == [[0]] * 3
    assert t.ensemble.final.tolist() == [0]
    assert t.ensemble.nested["outer"] == pytest.approx(t.nested["outer"], rel=1e-6)
    assert t.trials["cv y.mae"].isna().sum() == 2
    lost = override(cfg, {"s.training.learning_rate": 1e30})
    with pytest.raises(NestedAEError, match="diverged") as e:
        tune(lost, trials=2, eta=2, rungs=1, outer_folds=3, space=wild, seed=0, lengths=1)
    assert "\n" not in str(e.value)


def test_tune_refuses_settings_that_cannot_run_with_one_line_errors(tmp_path, tiny_frame):
    tiny_frame.to_csv(tmp_path / "s.csv", index=False)
    cfg = parse_config({"scales": {"s": tiny_scale()}}, str(tmp_path / "c.toml"))
    with pytest.raises(ConfigError, match="^tune --trials 0: use at least 1$"):
        tune(cfg, trials=0)
    with pytest.raises(ConfigError, match="has no setting 'encoder.l3'"):
        tune(cfg, space=Space((Dim("encoder.l3", 0.1, 1.0),)))
    with pytest.raises(ConfigError, match="--outer-folds 0: use at least 2"):
        tune(cfg, outer_folds=0)
    with pytest.raises(ConfigError, match="--budget-minutes 0: use a positive number"):
        tune(cfg, budget_minutes=0)
    for k in (0, 5, 2.5, True):
        with pytest.raises(ConfigError, match=rf"^tune --ensemble {k}: use an integer from 1 "
                           r"to --trials \(4\)$"):
            tune(cfg, trials=4, ensemble=k)
    for n in (0, 1.5):
        with pytest.raises(ConfigError, match=rf"^tune --lengths {n}: use a whole number"):
            tune(cfg, lengths=n)
    with pytest.raises(ConfigError, match="--eta 1: use at least 2"):
        schedule(4, 10, eta=1)
    with pytest.raises(ConfigError, match="--rungs -1: use at least 1"):
        schedule(4, 10, eta=2, rungs=-1)
    (tmp_path / "space").mkdir()
    with pytest.raises(ConfigError, match="--space .*cannot be read"):
        load_space(tmp_path / "space")
    (tmp_path / "b.toml").write_text('[dims."encoder.l1"]\nlow = true\nhigh = 1.0\n')
    with pytest.raises(ConfigError, match="need numbers low <= high"):
        load_space(tmp_path / "b.toml")


def test_the_default_space_tunes_the_latent_size_of_the_built_in_network(tmp_path):
    """Half, once and twice the configured latent size are choices of the default space, and a
    tune over it trains settings of different latent sizes side by side."""
    cfg = _config(tmp_path, "latent")
    spec = cfg.scales[0]
    k = spec.encoder.latent_size
    dims = {d.key: d for d in default_space(spec).dims}
    assert dims["encoder.latent_size"].choices == tuple(sorted({max(1, k // 2), k, 2 * k}))
    r = tune(cfg, trials=4, eta=2, rungs=2, outer_folds=3, seed=0)
    sizes = {s["encoder.latent_size"] for s in r.settings}
    assert len(sizes) > 1 and sizes <= set(dims["encoder.latent_size"].choices)
    assert r.settings[r.final]["encoder.latent_size"] in sizes
    assert np.isfinite(r.nested["outer"]) and set(r.trials["encoder.latent_size"]) == sizes
