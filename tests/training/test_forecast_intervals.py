"""The forecast's intervals when the calibration window is quieter than the days they serve.

The calibration window is the most recent block of training orders; in a seasonal business it can
fall in quiet weeks while the orders being forecast sit in the peak. Residuals divided by a
learned scale (how far off the forecast usually is for such an order) carry over; raw residuals
do not. Built by hand so that the shift is known: the noise grows with ``load``, the early
orders cover every load, the calibration block only low ones, the orders forecast only high ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from data.contract import STAGES
from training.forecast import DelayForecast


def _world(n: int, load: np.ndarray, rng: np.random.Generator):
    other = rng.normal(size=n)
    X = np.column_stack([load, other])
    noise = rng.normal(size=n) * (0.5 + 4.0 * load)
    days_late = 2.0 * load + 0.5 * other + noise
    columns = {"slack_days": np.full(n, 30.0)}  # no stage data: the direct forecast
    return X, columns, days_late


def _coverage(lo, hi, y):
    return float(np.mean((lo <= y) & (y <= hi)))


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    n_early, n_calib, n_test = 20_000, 3_000, 5_000
    load = np.concatenate([rng.uniform(0, 1, n_early), rng.uniform(0.0, 0.3, n_calib)])
    X, columns, y = _world(len(load), load, rng)
    blocks = np.concatenate([np.arange(n_early) % 4, np.full(n_calib, 4)])
    targets = {"days_late": y, "tail": np.full(len(y), np.nan)}
    targets |= {f"added_{s}": np.full(len(y), np.nan) for s in STAGES}
    model = DelayForecast(["load", "other"], grace_days=0).fit(X, columns, targets, blocks)
    X_peak, columns_peak, y_peak = _world(n_test, rng.uniform(0.7, 1.0, n_test), rng)
    return model, X_peak, columns_peak, y_peak


def test_intervals_learned_in_quiet_weeks_still_cover_the_peak(fitted):
    model, X, columns, y = fitted
    fc = model.predict(X, columns)
    assert 0.75 <= _coverage(fc.p10, fc.p90, y) <= 0.87
    assert 0.92 <= _coverage(fc.p025, fc.p975, y) <= 0.99


def test_without_the_scale_the_same_intervals_would_not(fitted):
    # The same model with its scale model removed (as a model saved before scales were kept
    # is loaded): raw calibration residuals from the quiet block, far too narrow for the peak.
    model, X, columns, y = fitted
    fc = model.predict(X, columns)
    scale = model._models.pop("scale")
    try:
        raw = model.predict(X, columns)
    finally:
        model._models["scale"] = scale
    assert _coverage(raw.p10, raw.p90, y) < 0.6
    assert np.all(fc.p90 - fc.p10 > raw.p90 - raw.p10)


def test_a_harder_order_gets_a_wider_interval_and_the_probability_follows(fitted):
    model = fitted[0]
    X = np.array([[0.05, 0.0], [0.95, 0.0]])
    fc = model.predict(X, {"slack_days": np.full(2, 30.0)})
    width = fc.p90 - fc.p10
    assert width[1] > 3 * width[0]
    assert 0.0 <= fc.p_late.min() and fc.p_late.max() <= 1.0


def test_an_order_time_has_overtaken_gets_its_own_bucket():
    from training.forecast import buckets

    position = np.array([2, 2, 2, 2])
    known = np.ones(4, dtype=bool)
    slack = np.array([5.0, 5.0, -3.0, -3.0])
    # The second and fourth forecasts were held at "delivered now" (-slack).
    overtaken = np.array([False, True, False, True])
    got = buckets(position, known, slack, overtaken)
    assert got.tolist() == [8, 9, 10, 11]


def test_a_forecast_saved_with_the_earlier_buckets_still_predicts(fitted):
    # Saved before the overtaken state: two buckets per stage position, not four.
    model, X, columns, _ = fitted
    quantiles, residuals = model.quantiles_, model.residuals_
    try:
        model.quantiles_ = {b: quantiles[2 * b] for b in range(len(quantiles) // 2)}
        model.residuals_ = {b: residuals[2 * b] for b in range(len(residuals) // 2)}
        fc = model.predict(X[:100], {"slack_days": columns["slack_days"][:100]})
        assert np.isfinite(fc.p90).all() and (fc.p90 >= fc.days_late).all()
    finally:
        model.quantiles_, model.residuals_ = quantiles, residuals
