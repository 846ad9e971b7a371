"""Tuned baselines (`compare --tune`): nested CV on the comparison's own folds. No outer
validation target reaches a fit or a choice; the inner folds are the other outer folds, so a
grouped split stays grouped; a search finds the setting a plain default misses."""

import numpy as np
import pytest

from nested_ae_jax.compare.tuned import TUNED_MODELS, candidates, search_space, tuned_oof


def data(n=120, d=5, seed=0, n_folds=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.05 * rng.normal(size=n)
    fold_of_row = np.arange(n) % n_folds
    return [x] * n_folds, y, fold_of_row


@pytest.mark.parametrize("name", ["ridge (tuned)", "SVR (tuned)"])
def test_outer_validation_targets_reach_neither_the_fit_nor_the_choice(name):
    features, y, fold_of_row = data(n=60)
    pred, chosen = tuned_oof(name, features, y, fold_of_row, trials=2)
    canary = y.copy()
    canary[fold_of_row == 1] = 1e6  # fold 1's targets: garbage
    pred2, chosen2 = tuned_oof(name, features, canary, fold_of_row, trials=2)
    val = fold_of_row == 1
    np.testing.assert_array_equal(pred[val], pred2[val])  # fold 1 predicted as before
    assert chosen[1] == chosen2[1]  # and chosen alike
    assert not np.allclose(pred[~val], pred2[~val])  # the others did train on it


def test_inner_folds_are_the_other_outer_folds(monkeypatch):
    """Outer split f's search validates on each other outer fold in turn, and trains on the
    rest of f's training rows: a grouped or matched split stays grouped inside."""
    import sklearn.model_selection as ms

    seen = []

    class Recording(ms.GridSearchCV):
        def fit(self, x, y):
            seen.append([(tr, va) for tr, va in self.cv.split(x)])
            return super().fit(x, y)

    monkeypatch.setattr(ms, "GridSearchCV", Recording)
    features, y, fold_of_row = data(n=40, n_folds=4)
    tuned_oof("ridge (tuned)", features, y, fold_of_row, trials=2)
    assert len(seen) == 4
    for f, splits in enumerate(seen):
        inner_folds = fold_of_row[fold_of_row != f]  # the search's rows, in order
        assert sorted(set(inner_folds[va].tolist()).pop() for _, va in splits) == \
            sorted(set(range(4)) - {f})
        for tr, va in splits:
            assert len(set(inner_folds[va].tolist())) == 1  # one whole outer fold
            assert len(tr) + len(va) == len(inner_folds)


def test_the_defaults_are_always_a_candidate_so_tuning_cannot_leave_them_out():
    """One trial: the defaults alone, so the tuned SVR's out-of-fold predictions are the
    default SVR's (fitted here independently); more trials: each outer split's choice is
    at least as good on its inner folds as the defaults are (recomputed with
    cross_val_score on the same inner split)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import PredefinedSplit, cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    assert candidates("SVR (tuned)", 4)[0] == {"regressor__C": 1.0, "regressor__gamma":
                                                "scale", "regressor__epsilon": 0.1}
    assert candidates("lasso (tuned)", 4)[0] == {"alpha": 1.0}
    for name in TUNED_MODELS:
        first, *rest = candidates(name, 80)  # the forest's space has 64 points: no repeat
        assert first not in rest and len(rest) == (63 if "forest" in name else 79)
    features, y, fold_of_row = data(n=60)
    default = lambda: TransformedTargetRegressor(SVR(), transformer=StandardScaler())  # noqa
    pred, _ = tuned_oof("SVR (tuned)", features, y, fold_of_row, trials=1)
    expect = np.zeros_like(y)
    for f in range(4):
        val = fold_of_row == f
        expect[val] = default().fit(features[f][~val], y[~val]).predict(features[f][val])
    np.testing.assert_allclose(pred[:, 0], expect, rtol=1e-12)
    _, chosen = tuned_oof("SVR (tuned)", features, y, fold_of_row, trials=4)
    for c in chosen:
        rows = fold_of_row != c.fold
        inner = -cross_val_score(default(), features[c.fold][rows], y[rows],
                                 cv=PredefinedSplit(fold_of_row[rows]),
                                 scoring="neg_mean_absolute_error").mean()
        assert c.inner_mae <= inner + 1e-12


def test_the_search_finds_a_setting_the_default_misses():
    from sklearn.linear_model import Lasso

    features, y, fold_of_row = data(n=160, d=40)  # linear, little noise, 40 columns
    pred, chosen = tuned_oof("lasso (tuned)", features, y, fold_of_row, trials=12)
    default = np.zeros_like(y)
    for f in range(4):
        val = fold_of_row == f
        default[val] = Lasso().fit(features[f][~val], y[~val]).predict(features[f][val])
    tuned_mae, default_mae = np.abs(pred[:, 0] - y).mean(), np.abs(default - y).mean()
    assert tuned_mae < 0.5 * default_mae, (tuned_mae, default_mae)
    assert all(c.params["alpha"] < 0.1 for c in chosen)  # alpha = 1 is far too strong here


def test_every_baseline_has_a_space_and_multi_column_targets_are_tuned_per_column():
    for name in TUNED_MODELS:
        estimator, space = search_space(name)
        assert set(space) <= set(estimator.get_params()), name
    features, y, fold_of_row = data(n=40)
    pred, chosen = tuned_oof("ridge (tuned)", features, np.stack([y, -y], 1), fold_of_row,
                             trials=2)
    assert pred.shape == (40, 2) and len(chosen) == 4 * 2
    with pytest.raises(ValueError, match="unknown tuned baseline 'svm'"):
        search_space("svm")
