"""training.single_row: one row through LightGBM's single-row fast path gives exactly what
Booster.predict gives, for the kinds of boosters the forecast holds (regression, trimmed and
reloaded, with missing values and a categorical column), from several threads at once."""

from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pytest

from training.single_row import SingleRowPredictor


def _booster(objective: str, seed: int) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 12))
    X[:, 3] = rng.integers(0, 6, size=2000)  # a categorical column
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) * 2 + (X[:, 3] == 2) + rng.normal(scale=0.3, size=2000)
    if objective == "binary":
        y = (y > 0).astype(float)
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "seed": seed}
    data = lgb.Dataset(X, y, categorical_feature=[3])
    booster = lgb.train(params, data, num_boost_round=40)
    # As the forecast keeps them: trimmed to its trees and read back from text.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=30)), X


@pytest.mark.parametrize("objective", ["regression", "quantile", "binary"])
def test_one_row_equals_booster_predict(objective):
    booster, X = _booster(objective, seed=3)
    fast = SingleRowPredictor(booster)
    for row in X[:300]:
        assert fast(row) == booster.predict(row[None, :], num_threads=1)[0]


def test_threads_at_once_get_their_own_rows():
    booster, X = _booster("regression", seed=4)
    fast = SingleRowPredictor(booster)
    expected = booster.predict(X[:400], num_threads=1)
    got = np.full(400, np.nan)

    def work(part: range) -> None:
        for i in part:
            got[i] = fast(X[i])

    threads = [threading.Thread(target=work, args=(range(k, 400, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(got, expected)


def test_a_row_of_the_wrong_width_is_refused():
    booster, X = _booster("regression", seed=5)
    with pytest.raises(ValueError, match="expected one row of 12 features"):
        SingleRowPredictor(booster)(X[0, :5])
