"""Baselines tuned as hard as NestedAE (``nested-ae compare --tune``): every scikit-learn model
chooses its settings by scikit-learn's own search, inside each outer training split, among
its default setting and random draws from its space (:func:`candidates`), so tuning can only
lose to the defaults by the noise of the choice, never by leaving them out.

Nested CV on the comparison's own folds: for outer fold f the search sees only the rows
outside f, and its inner folds are the other outer folds (``PredefinedSplit`` on the chain's
``fold_of_row``), so a grouped or matched split stays grouped inside too (no entity is on both
sides of an inner split) and no outer validation row reaches a fit or a choice. The chosen
setting, refitted on the whole outer training split, predicts fold f; the pooled out-of-fold
figure is the nested-CV figure. Targets of several columns are tuned column by column.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

TUNED_MODELS = ("random forest (tuned)", "gradient boosting (tuned)", "SVR (tuned)",
                "ridge (tuned)", "lasso (tuned)")


class TunedFold(NamedTuple):
    """The setting one outer split chose: model, outer fold, target column, the parameters
    and their inner-CV MAE."""

    model: str
    fold: int
    column: int
    params: dict
    inner_mae: float


def search_space(name: str, seed: int = 0) -> tuple[object, dict]:
    """(estimator, parameter distributions) of a tuned baseline: the settings that matter for
    each model, over ranges wide enough for the data sets shipped here (log-uniform for
    penalties and rates)."""
    from scipy.stats import loguniform
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Lasso, Ridge
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    if name == "random forest (tuned)":
        return (RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1),
                {"max_features": [1.0, 0.6, 0.33, "sqrt"], "min_samples_leaf": [1, 2, 4, 8],
                 "max_depth": [None, 6, 12, 24]})
    if name == "gradient boosting (tuned)":
        return (HistGradientBoostingRegressor(random_state=seed, max_iter=300),
                {"learning_rate": loguniform(0.01, 0.3), "max_leaf_nodes": [7, 15, 31],
                 "min_samples_leaf": [3, 10, 20, 40], "l2_regularization": loguniform(1e-3, 10)})
    if name == "SVR (tuned)":  # an RBF kernel needs a target of unit scale
        return (TransformedTargetRegressor(SVR(), transformer=StandardScaler()),
                {"regressor__C": loguniform(0.1, 300), "regressor__gamma": loguniform(1e-3, 1),
                 "regressor__epsilon": loguniform(1e-3, 0.5)})
    if name == "ridge (tuned)":
        return Ridge(), {"alpha": loguniform(1e-4, 1e3)}
    if name == "lasso (tuned)":
        return Lasso(max_iter=20000), {"alpha": loguniform(1e-5, 1.0)}
    raise ValueError(f"unknown tuned baseline '{name}'; use one of {', '.join(TUNED_MODELS)}")


def candidates(name: str, trials: int, seed: int = 0) -> list[dict]:
    """The settings a tuned baseline chooses among: first scikit-learn's defaults of the
    searched parameters (the estimator's own values), then ``trials - 1`` other draws from
    its space (``ParameterSampler``, seeded; fewer when a space of lists has fewer points)."""
    import warnings

    from sklearn.model_selection import ParameterSampler

    estimator, space = search_space(name, seed)
    defaults = {k: estimator.get_params()[k] for k in space}
    with warnings.catch_warnings():  # a space of lists smaller than the trials is not news
        warnings.simplefilter("ignore", UserWarning)
        draws = list(ParameterSampler(space, n_iter=trials, random_state=seed))
    return [defaults, *[d for d in draws if d != defaults][:trials - 1]]


def tuned_oof(name: str, features: list[np.ndarray], y: np.ndarray, fold_of_row: np.ndarray,
              *, trials: int = 20, seed: int = 0) -> tuple[np.ndarray, list[TunedFold]]:
    """Out-of-fold predictions (N, k) of baseline ``name`` tuned inside every outer split
    (module docstring): features[f] is fold f's (N, d) design matrix. Returns the predictions
    and the setting each outer split chose per target column."""
    import warnings

    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    y = np.asarray(y, np.float64).reshape(len(y), -1)
    pred, chosen = np.zeros_like(y), []
    estimator, _ = search_space(name, seed)
    grid = [{k: [v] for k, v in c.items()} for c in candidates(name, trials, seed)]
    for f, x in enumerate(features):
        train, val = (fold_of_row >= 0) & (fold_of_row != f), fold_of_row == f
        inner = PredefinedSplit(fold_of_row[train])  # the other outer folds
        for c in range(y.shape[1]):  # ties: the first candidate (the defaults first)
            search = GridSearchCV(clone(estimator), grid, cv=inner,
                                  scoring="neg_mean_absolute_error", n_jobs=1)
            with warnings.catch_warnings():  # a too-small grid or a slow lasso is not news
                warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
                search.fit(x[train], y[train, c])
            pred[val, c] = search.predict(x[val])
            chosen.append(TunedFold(name, f, c, dict(search.best_params_),
                                    float(-search.best_score_)))
    return pred, chosen
