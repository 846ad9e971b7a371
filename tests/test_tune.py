"""nested-ae tune: Sobol spaces, successive halving per race, honest nested-CV selection."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import load_config, parse_config
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.runner import fit_config
from nested_ae_jax.tune import (Dim, Rung, Space, default_space, load_space, sample, schedule,
                                survivors, tune, within_budget, write_outputs)


def test_schedule_divides_settings_and_multiplies_epochs_by_eta():
    assert schedule(27, 81, eta=3) == [(27, 3), (9, 9), (3, 27), (1, 81)]
    assert schedule(4, 9, eta=2, rungs=2) == [(4, 4), (2, 9)]


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
    expect = rows.setting.to_numpy()[np.where(alive, inner, np.inf).argmin(axis=0)]
    assert (r.chosen == expect).all()
    assert rows[[f"inner{o} y.mae" for o in range(3)]].to_numpy() == pytest.approx(inner,
                                                                                    rel=1e-5)
    final_alive = rows.alive_in.str.contains("final").to_numpy()
    cv = rows["cv y.mae"].to_numpy()
    assert r.final == rows.setting[np.where(final_alive, cv, np.inf).argmin()]


def test_tuned_toml_holds_the_final_setting_and_train_reproduces_it(tuned, tmp_path):
    _, r = tuned
    paths = write_outputs(r, tmp_path / "out")
    cfg = load_config(paths[1])
    spec = cfg.scale("s")
    chosen = r.settings[r.final]
    assert spec.training.learning_rate == pytest.approx(chosen["training.learning_rate"])
    assert spec.heads[0].dropout == pytest.approx(chosen["heads.y.dropout"])
    assert (spec.scaler, spec.training.select, spec.training.epochs) == ("train", "last", 8)
    trained = fit_config(cfg).results["s"].metrics["heads"]["y"]["pooled_val"]["mae"]
    assert trained == pytest.approx(r.final_cv, rel=1e-5)
    doc = pd.read_csv(paths[2])
    assert len(doc) == 4 + len(r.last.runs) and set(doc.rung) == {0, 1}


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
    last = r.trials[r.trials.rung == 1]
    races = [race for row in last.alive_in for race in row.split()]
    assert sorted(races) == ["0", "1", "2", "final"]  # one setting per race
    assert np.isfinite(r.nested["outer"]) and len(r.outer) == 3
    budget = json.loads(write_outputs(r, tmp_path / "out")[0].read_text())["budget"]
    assert budget["minutes"] == 1.5 and budget["spent_s"] == 400 and not budget["within"]
    assert budget["projected_s"] == pytest.approx(200 + len(last) * 8 * 200 / 16)
    (check,) = budget["checks"]
    assert check["rungs_before"] == [{"keep": 2, "epochs": 8}]
    assert check["rungs_after"] == [{"keep": 1, "epochs": 8}] and not check["fits"]
    assert budget["reduced"] == [check["note"]] and check["note"] in notes
    assert "(the budget is spent)" in check["note"] and "minimum plan" in check["note"]


def test_canary_outer_validation_targets_reach_no_inner_fit_or_choice(tuned):
    """Targets of outer fold 0's validation rows poisoned by +1e6: outer split 0's inner
    errors, survivors and choice are unchanged; the poison does reach the plain folds."""
    tmp, clean = tuned
    _OUTER0[:] = np.flatnonzero(clean.last.nested_folds.outer == 0).tolist()
    poisoned = _tune(_config(tmp, "poisoned", poison=1e6))
    race0 = lambda t: t[[" 0 " in f" {s} " for s in t.alive_in]]  # noqa: E731
    a, b = race0(clean.trials), race0(poisoned.trials)  # rows alive in outer split 0's race
    assert a[["rung", "setting"]].values.tolist() == b[["rung", "setting"]].values.tolist()
    assert a["inner0 y.mae"].to_numpy() == pytest.approx(b["inner0 y.mae"].to_numpy(), rel=1e-5)
    assert clean.chosen[0] == poisoned.chosen[0]
    b = poisoned.trials
    assert (b["cv y.mae"] > 1e4).all() and (b["inner1 y.mae"] > 1e4).all()


def test_tune_refuses_settings_that_cannot_run_with_one_line_errors(tmp_path, tiny_frame):
    tiny_frame.to_csv(tmp_path / "s.csv", index=False)
    cfg = parse_config({"scales": {"s": tiny_scale()}}, str(tmp_path / "c.toml"))
    with pytest.raises(ConfigError, match="--outer-folds 0: use at least 2"):
        tune(cfg, outer_folds=0)
    with pytest.raises(ConfigError, match="--budget-minutes 0: use a positive number"):
        tune(cfg, budget_minutes=0)
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
