"""The calibration folds and the search sample are Datasets of their own rows, binned by their
parent (``training.fit._rows_of``) rather than ``Dataset.subset``: the trees must be the ones a
subset gives, categorical columns and weights included."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training.fit import _rows_of

PARAMS = {
    "objective": "binary",
    "num_leaves": 7,
    "min_data_in_leaf": 5,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,
    "verbosity": -1,
    "seed": 3,
}


@pytest.mark.parametrize("weighted", [False, True])
def test_rows_of_grows_the_trees_a_subset_grows(weighted):
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 6))
    X[:, 0] = rng.integers(0, 12, size=n)  # a categorical column
    X[rng.random(X.shape) < 0.1] = np.nan
    y = ((X[:, 1] > 0.3) ^ (rng.random(n) < 0.2)).astype(float)
    weight = rng.uniform(0.2, 1.0, size=n) if weighted else None
    parent = lgb.Dataset(
        X, y, weight=weight, categorical_feature=[0], params={"feature_pre_filter": False}
    )
    # A small share of the rows, as a single early block is.
    positions = np.flatnonzero(rng.random(n) < 0.15)
    own = lgb.train(PARAMS, _rows_of(parent, X, y, weight, positions), num_boost_round=15)
    sub = lgb.train(PARAMS, parent.subset(positions.tolist()), num_boost_round=15)
    assert own.num_trees() == 15
    assert own.model_to_string() == sub.model_to_string()
    # The parent's bins, not bins of the rows alone: a Dataset of the rows binned afresh
    # would cut the features elsewhere.
    fresh = lgb.train(
        PARAMS,
        lgb.Dataset(
            X[positions],
            y[positions],
            weight=None if weight is None else weight[positions],
            categorical_feature=[0],
        ),
        num_boost_round=15,
    )
    assert fresh.model_to_string() != own.model_to_string()
