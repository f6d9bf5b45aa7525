"""The tabulated TreeSHAP gives LightGBM's pred_contrib values, which the shap package
reproduces: all three agree to 1e-6."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from serving.treeshap import flatten_booster, shap_values


@pytest.fixture(scope="module")
def toy_booster() -> tuple[lgb.Booster, np.ndarray]:
    """Numeric, categorical and missing values, zeros, depth-limited trees."""
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 6))
    X[:, 2] = rng.integers(0, 8, size=n)
    X[rng.random(n) < 0.15, 1] = np.nan
    X[rng.random(n) < 0.15, 2] = np.nan
    X[rng.random(n) < 0.3, 4] = 0.0
    y = X[:, 0] + np.nan_to_num(X[:, 1]) + (X[:, 2] % 3 == 0) + rng.normal(size=n) > 1
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "max_depth": 5,
        "verbosity": -1,
        "min_data_in_leaf": 20,
        "num_threads": 1,
        "max_cat_to_onehot": 4,
    }
    booster = lgb.train(params, lgb.Dataset(X, y.astype(int), categorical_feature=[2]), 60)
    test = X[:500].copy()
    test[:20, 2] = 99  # unseen category
    test[20:30, 2] = -1  # negative code
    test[30:40] = np.nan  # all missing
    return booster, test


def test_tabulated_treeshap_equals_pred_contrib(toy_booster):
    booster, X = toy_booster
    expected = booster.predict(X, pred_contrib=True)
    got = shap_values(flatten_booster(booster), X, num_threads=2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


# shap notes that its LightGBM output format changed; these tests read the new one.
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer")
def test_pred_contrib_agrees_with_the_shap_package(toy_booster):
    shap = pytest.importorskip("shap")
    booster, X = toy_booster
    X = X[40:240]  # the shap package refuses codes it never saw in a categorical split
    ours = booster.predict(X, pred_contrib=True)
    explainer = shap.TreeExplainer(booster)
    values = np.asarray(explainer.shap_values(X))
    if values.ndim == 3:  # older shap: one array per class
        values = values[-1]
    np.testing.assert_allclose(ours[:, :-1], values, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours[0, -1], np.ravel(explainer.expected_value)[-1], atol=1e-6)


def test_real_model_tabulated_equals_pred_contrib(served):
    from features.build import open_order_features

    rm = served.loaded.risk_model
    X = rm.encode(open_order_features(served.dataset, **served.feature_options))
    expected = rm.booster.predict(X, pred_contrib=True)
    got = shap_values(flatten_booster(rm.booster), X, num_threads=2)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_serial_and_parallel_kernels_give_the_same_numbers(toy_booster):
    """Batches past PARALLEL_MIN_ROWS use the parallel kernel, smaller ones (and one thread) the
    serial one: the same values to the bit, and LightGBM's."""
    from serving.treeshap import PARALLEL_MIN_ROWS

    booster, X = toy_booster
    big = np.tile(X, (PARALLEL_MIN_ROWS // len(X) + 2, 1))
    flat = flatten_booster(booster)
    parallel = shap_values(flat, big, num_threads=2)
    serial = shap_values(flat, big, num_threads=1)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_allclose(serial, booster.predict(big, pred_contrib=True), atol=1e-6, rtol=0)


def test_serial_kernel_runs_from_many_threads_at_once(toy_booster):
    """The serial kernel releases the GIL and uses no thread pool: server threads call it at
    once, and each gets its own rows' values."""
    from concurrent.futures import ThreadPoolExecutor

    booster, X = toy_booster
    flat = flatten_booster(booster)
    pieces = [X[i::4] for i in range(4)]
    alone = [shap_values(flat, p, num_threads=1) for p in pieces]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            together = list(pool.map(lambda p: shap_values(flat, p, num_threads=1), pieces))
            for a, b in zip(alone, together, strict=True):
                np.testing.assert_array_equal(a, b)
