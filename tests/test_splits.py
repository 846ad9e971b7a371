"""Fold assignment: reproduces scikit-learn's splitters; groups never straddle folds."""

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from nested_ae_jax.errors import ConfigError, DataError
from nested_ae_jax.splits import assign_folds, bin_target, fold_masks, groups_from_rows


def test_kfold_reproduces_sklearn_for_the_papers_setting():
    fold_ids = assign_folds(494, kind="kfold", n_splits=5, shuffle=True, random_state=0)
    assert fold_ids.dtype == np.int32 and fold_ids.shape == (494,)
    for f, (_, valid) in enumerate(KFold(5, shuffle=True, random_state=0).split(np.zeros(494))):
        np.testing.assert_array_equal(np.flatnonzero(fold_ids == f), valid)


@pytest.mark.parametrize("n_rows,n_splits,seed", [(7, 2, 0), (10, 3, 5), (101, 4, 42),
                                                  (1000, 10, 3), (12, 12, 1)])
def test_kfold_ids_are_sklearns_kfold_without_importing_it(n_rows, n_splits, seed):
    for shuffle in (True, False):
        fold_ids = assign_folds(n_rows, kind="kfold", n_splits=n_splits, shuffle=shuffle,
                                random_state=seed)
        splits = KFold(n_splits, shuffle=shuffle, random_state=seed if shuffle else None)
        for f, (_, valid) in enumerate(splits.split(np.zeros(n_rows))):
            np.testing.assert_array_equal(np.flatnonzero(fold_ids == f), valid)


def test_kfold_assignment_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys; from nested_ae_jax.splits import assign_folds; "
            "assign_folds(50, kind='kfold', n_splits=5, random_state=0); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_unshuffled_kfold_is_contiguous_and_ignores_random_state():
    fold_ids = assign_folds(10, kind="kfold", n_splits=3, shuffle=False, random_state=123)
    np.testing.assert_array_equal(fold_ids, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("kind", ["kfold", "group", "stratified"])
def test_every_row_is_validation_exactly_once(kind):
    n = 103
    rng = np.random.default_rng(1)
    groups, labels = rng.integers(0, 30, n), rng.integers(0, 3, n)
    fold_ids = assign_folds(n, kind=kind, n_splits=4, groups=groups, labels=labels)
    train, valid = fold_masks(fold_ids, 4)
    assert valid.shape == train.shape == (4, n)
    np.testing.assert_array_equal(valid.sum(axis=0), np.ones(n))
    np.testing.assert_array_equal(train, ~valid)
    assert set(np.unique(fold_ids)) == {0, 1, 2, 3}


@pytest.mark.parametrize("shuffle", [True, False])
def test_group_split_keeps_each_group_in_one_fold_and_matches_sklearn(shuffle):
    rng = np.random.default_rng(2)
    groups = rng.choice(np.array(["MAPbI3", "FAPbI3", "CsPbBr3", "MAPbBr3", "FASnI3", "CsSnI3", "X"]), 80)
    fold_ids = assign_folds(80, kind="group", n_splits=3, shuffle=shuffle, random_state=0, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(fold_ids[groups == g])) == 1, g
    kw = {"shuffle": shuffle, "random_state": 0 if shuffle else None}  # scikit-learn >= 1.6
    for f, (_, valid) in enumerate(GroupKFold(3, **kw).split(np.zeros(80), groups=groups)):
        np.testing.assert_array_equal(np.flatnonzero(fold_ids == f), valid)


def test_stratified_folds_balance_the_bins_and_match_sklearn():
    y = np.random.default_rng(4).normal(size=200)
    labels = bin_target(y, 4)
    fold_ids = assign_folds(200, kind="stratified", n_splits=5, labels=labels)
    counts = np.array([[np.sum((fold_ids == f) & (labels == b)) for b in range(4)] for f in range(5)])
    assert counts.max() - counts.min() <= 1  # each fold holds 10 +- 1 rows of every bin
    for f, (_, valid) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(y, labels)):
        np.testing.assert_array_equal(np.flatnonzero(fold_ids == f), valid)


def test_groups_from_rows_gives_identical_rows_one_id_in_order_of_appearance():
    table = np.array(
        [["MAPbI3", "TiO2", 1.5], ["FAPbI3", "SnO2", 1.5], ["MAPbI3", "TiO2", 1.5],
         ["MAPbI3", "TiO2", 1.50001], ["FAPbI3", "SnO2", 1.5], ["MAPbI3", "SnO2", 1.5]],
        dtype=object,
    )
    np.testing.assert_array_equal(groups_from_rows(table), [0, 1, 0, 2, 1, 3])
    floats = np.array([[1.0, np.nan], [1.0, np.nan], [1.0, 2.0], [np.nan, 2.0]])
    np.testing.assert_array_equal(groups_from_rows(floats), [0, 0, 1, 2])
    np.testing.assert_array_equal(groups_from_rows(np.array(["b", "a", "b"])), [0, 1, 0])


def test_bin_target_makes_quantile_bins_and_merges_tied_edges():
    y = np.arange(100.0)
    bins = bin_target(y, 4)
    np.testing.assert_array_equal(np.bincount(bins), [25, 25, 25, 25])
    assert np.all(np.diff(bins) >= 0)  # bins are ordered like the target
    tied = np.r_[np.zeros(60), np.arange(1.0, 41.0)]  # 60 % zeros: the lower quantile edges coincide
    tied_bins = bin_target(tied, 5)
    assert np.unique(tied_bins[:60]).size == 1 and tied_bins[0] == 0
    assert set(np.unique(tied_bins)) == set(range(tied_bins.max() + 1)) and tied_bins.max() < 4
    np.testing.assert_array_equal(bin_target(np.full(7, 3.0), 3), np.zeros(7))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 10, "kind": "kfold", "n_splits": 1}, "n_splits >= 2"),
        ({"n_rows": 3, "kind": "kfold", "n_splits": 5}, "only 3 rows"),
        ({"n_rows": 6, "kind": "group", "n_splits": 3, "groups": np.arange(6) % 2}, "only 2 distinct"),
        ({"n_rows": 6, "kind": "group", "n_splits": 2}, "needs groups"),
        ({"n_rows": 6, "kind": "group", "n_splits": 2, "groups": np.arange(5)}, "groups has shape (5,)"),
        ({"n_rows": 6, "kind": "stratified", "n_splits": 2}, "needs labels"),
        ({"n_rows": 6, "kind": "stratified", "n_splits": 2, "labels": np.zeros(7, int)}, "6 rows"),
        ({"n_rows": 4, "kind": "stratified", "n_splits": 2, "labels": np.r_[0.1, 0.5, 0.2, 0.9]}, "bin_target"),
        ({"n_rows": 4, "kind": "stratified", "n_splits": 3, "labels": np.r_[0, 0, 1, 1]}, "largest has 2"),
    ],
)
def test_bad_split_inputs_raise_one_line_data_errors(kwargs, message):
    with pytest.raises(DataError) as info:
        assign_folds(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_kind_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'group'"):
        assign_folds(10, kind="groups", n_splits=2)


def test_fold_masks_rejects_ids_outside_the_folds():
    with pytest.raises(DataError, match="0..2"):
        fold_masks(np.array([0, 1, 3]), 3)
