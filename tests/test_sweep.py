"""Sweeps: grids become as few compiled calls as the shapes allow, and score like `train`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import parse_config
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
    shapes = sweep(chain, {"encoder.latent_size": [1, 2]})
    assert shapes.n_groups == 2
    assert set(shapes.folds["fold"]) == {0, 1, 2}


def test_sweep_refuses_what_it_cannot_score(chain):
    with pytest.raises(ConfigError, match="has no key 'l3'"):
        sweep(chain, {"encoder.l3": [1.0]})
    with pytest.raises(ConfigError, match="no validation rows"):
        sweep(chain, {"cv.kind": ["none"]})
    with pytest.raises(ConfigError, match="ensemble > 1 is not swept"):
        sweep(chain, {"training.ensemble": [1, 3]})


def _outer_of(cfg):
    """The outer folds the sweep uses for the chain's last scale (KFold, random_state 0)."""
    from nested_ae_jax.splits import assign_folds
    return assign_folds(40, kind="kfold", n_splits=3, shuffle=True, random_state=0)


def test_nested_cv_scores_the_chosen_setting_on_rows_that_took_no_part_in_choosing(chain):
    """--outer-folds: per outer fold, the setting with the best pooled inner error is chosen
    and its outer model is scored on the outer validation rows; the report's outer figure is
    recomputed here from the chosen outer models' pooled predictions."""
    from nested_ae_jax.selection import nested_folds

    result = sweep(chain, {"encoder.l1": [0.0, 0.01]}, seeds=2, outer_folds=3)
    n = result.nested
    assert (n["outer_folds"], n["inner_folds"]) == (3, 3)
    assert result.n_models == 4 * (3 + 3 * 4) and result.n_groups == 1
    assert len(result.outer) == 3 and set(result.outer["outer_fold"]) == {0, 1, 2}
    for _, row in result.outer.iterrows():
        assert row["encoder.l1"] in (0.0, 0.01) and row["training.seed"] in (0, 1)
    assert np.isfinite([n["outer"], n["inner"], n["same_folds"]]).all()
    # pooled MAE over the outer folds = their MAEs weighted by fold size
    sizes = np.bincount(_outer_of(chain), minlength=3)
    assert n["outer"] == pytest.approx(
        (sizes * result.outer["outer y.mae"].to_numpy()).sum() / sizes.sum(), rel=1e-5)
    # every row is an outer validation row once; inner folds never touch the outer fold
    nf = nested_folds(np.arange(12) % 3, 3, 1)
    assert (nf.val[3::4].sum(axis=0) == 1).all()
    for o in range(3):
        inner_rows = nf.train[o * 4:o * 4 + 3] + nf.val[o * 4:o * 4 + 3]
        assert not inner_rows[:, np.arange(12) % 3 == o].any()


def test_grid_keys_may_name_the_swept_scale_and_other_scales_are_refused():
    from nested_ae_jax.sweep import relative_keys

    up, down = tiny_scale("up"), tiny_scale("down")
    cfg = parse_config({"scales": {"up": up, "down": down}})
    grid = parse_grid(["down.encoder.l1=0,0.1", "heads.y.dropout=0"])
    assert relative_keys(grid, cfg) == {"encoder.l1": [0, 0.1], "heads.y.dropout": [0]}
    assert relative_keys(parse_grid(["up.encoder.l1=0"]), cfg, "up") == {"encoder.l1": [0]}
    with pytest.raises(ConfigError, match="relative to the swept scale 'down'.*--scale up"):
        relative_keys(parse_grid(["up.encoder.l1=0"]), cfg)
