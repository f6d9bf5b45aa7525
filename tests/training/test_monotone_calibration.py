"""The calibrator never turns the booster's ranking around (training.fit.monotone_calibrator):
cross-fitted margins that rank their outcomes backwards (older blocks read by trees trained on
later history, under drift) give way to the most recent block's, and to a constant when even
those do not rank."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.fit import fit_calibrator, monotone_calibrator


def _margins(n: int, direction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(float)
    return direction * (2.0 * y - 1.0) + rng.normal(0, 1.0, n), y


def _calibrate(calibrator, margin):
    return calibrator.predict_proba(margin.reshape(-1, 1))[:, 1]


def test_margins_that_rank_stay_with_every_block():
    margin, y = _margins(2000, 1.0, 0)
    calibrator, used = monotone_calibrator(margin, y, "platt", recent=np.arange(1600, 2000))
    assert used == "all"
    same = fit_calibrator(margin, y, "platt")
    np.testing.assert_allclose(_calibrate(calibrator, margin), _calibrate(same, margin))


def test_backwards_older_blocks_give_way_to_the_most_recent_one():
    old_m, old_y = _margins(1600, -1.0, 1)  # older blocks: ranked backwards
    new_m, new_y = _margins(400, 1.0, 2)  # the most recent block: ranked right
    margin, y = np.concatenate([old_m, new_m]), np.concatenate([old_y, new_y])
    assert fit_calibrator(margin, y, "platt").coef_[0, 0] < 0  # what a plain fit would do
    calibrator, used = monotone_calibrator(margin, y, "platt", recent=np.arange(1600, 2000))
    assert used == "recent"
    risk = _calibrate(calibrator, new_m)
    assert roc_auc_score(new_y, risk) == pytest.approx(roc_auc_score(new_y, new_m))
    assert np.all(np.diff(_calibrate(calibrator, np.sort(margin))) >= 0)


def test_margins_that_rank_nowhere_give_the_late_rate_to_every_order():
    margin, y = _margins(2000, -1.0, 3)
    recent = np.arange(1600, 2000)
    calibrator, used = monotone_calibrator(margin, y, "platt", recent=recent)
    assert used == "none"
    risk = _calibrate(calibrator, margin)
    np.testing.assert_allclose(risk, y[recent].mean())


def test_isotonic_is_monotone_by_construction_and_left_alone():
    margin, y = _margins(500, -1.0, 4)
    calibrator, used = monotone_calibrator(margin, y, "isotonic", recent=np.arange(400, 500))
    assert used == "all"
    assert np.all(np.diff(calibrator.predict(np.sort(margin))) >= 0)
