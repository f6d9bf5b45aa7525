"""Metrics and baselines on tiny hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.baselines import LogisticBaseline, PlannerRule
from training.evaluate import (
    better,
    classification_metrics,
    expected_calibration_error,
    flat_metrics,
    horizon_of,
    metrics_by_horizon,
    top_k_precision_recall,
)


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [
        ([0, 1, 1, 0], [0.05, 0.15, 0.95, 0.85], (0.05 + 0.85 + 0.05 + 0.85) / 4),
        ([0, 0, 0, 1], [0.1, 0.1, 0.1, 0.1], 0.15),  # one bin: |1/4 - 0.1|
        ([1, 1], [1.0, 1.0], 0.0),  # a risk of exactly 1 lands in the last bin
        ([0, 1, 0, 1], [0.5, 0.5, 0.55, 0.55], 0.025),  # bin 5: |0.5 - 0.525|
    ],
)
def test_expected_calibration_error_by_hand(y, p, expected):
    assert expected_calibration_error(np.array(y), np.array(p)) == pytest.approx(expected)


def test_top_k_precision_and_recall():
    y = np.array([1, 0, 1, 0, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.05])
    assert top_k_precision_recall(y, score, 2) == pytest.approx((0.5, 1 / 3))
    assert top_k_precision_recall(y, score, 3) == pytest.approx((2 / 3, 2 / 3))
    # k larger than the data: everything is in the top.
    assert top_k_precision_recall(y, score, 100) == pytest.approx((0.5, 1.0))


def test_classification_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, score)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)  # AP: precision 1 at r=.5, 2/3 at r=1
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    # Top 5% of 4 rows is one row: the 0.8, a late order.
    assert (m["precision_top5pct"], m["recall_top5pct"]) == pytest.approx((1.0, 0.5))
    assert (m["precision_top100"], m["recall_top100"]) == pytest.approx((0.5, 1.0))


def test_ranking_metrics_undefined_on_one_class():
    m = classification_metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_horizon_buckets_put_overdue_apart():
    days = [-1, 0, 3.5, 4, 7.9, 8, 14.99, 15, 100]
    assert list(horizon_of(days)) == [
        "overdue",
        "0-3",
        "0-3",
        "4-7",
        "4-7",
        "8-14",
        "8-14",
        "15+",
        "15+",
    ]


def test_metrics_by_horizon_counts_and_flat_keys():
    y = np.array([1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.4, 0.7, 0.3])
    days = np.array([-2, 1, 2, 5, 20, 30])
    frame = metrics_by_horizon(y, p, days)
    assert list(frame.index) == ["all", "overdue", "0-3", "4-7", "8-14", "15+"]
    assert frame.loc["all", "n"] == 6 and frame.loc["0-3", "n"] == 2
    assert frame.loc["8-14", "n"] == 0
    assert frame.loc["0-3", "roc_auc"] == pytest.approx(1.0)
    flat = flat_metrics({"m": frame})
    assert flat["m.15plus.n"] == 2
    assert "m.8-14.roc_auc" not in flat  # NaN is not logged


@pytest.mark.parametrize(
    ("new", "old", "metric", "expected"),
    [
        (0.7, 0.6, "pr_auc", True),
        (0.6, 0.6, "pr_auc", False),  # ties keep the incumbent
        (0.2, 0.3, "brier", True),  # lower is better
        (0.3, 0.3, "brier", False),
        (float("nan"), 0.3, "pr_auc", False),
        (0.5, float("nan"), "roc_auc", True),
    ],
)
def test_better_respects_direction_and_ties(new, old, metric, expected):
    assert better(new, old, metric) is expected


def test_planner_rule_margin_and_fallback():
    X = pd.DataFrame({"slack_days": [5.0, -2.0, np.nan], "remaining_planned_days": [3.0, 1, 2]})
    rule = PlannerRule().fit(X)
    assert rule.uses_plan_
    np.testing.assert_allclose(rule.score(X), [-2.0, 3.0, -np.inf])
    np.testing.assert_allclose(rule.predict_proba_late(X), [0.0, 1.0, 0.0])
    no_plan = PlannerRule().fit(X[["slack_days"]])
    assert not no_plan.uses_plan_ and "no order_stages" in no_plan.note_
    np.testing.assert_allclose(no_plan.score(X[["slack_days"]])[:2], [-5.0, 2.0])


def test_logistic_baseline_learns_a_planted_signal():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame(
        {
            "slack_days": rng.normal(5, 3, n),
            "empty": np.nan,
            "priority": rng.choice(["rush", "normal", None], n),
        }
    )
    y = (X["slack_days"] + rng.normal(0, 1, n) < 4).astype(int).to_numpy()
    model = LogisticBaseline(["slack_days", "empty"], ["priority"]).fit(X, y)
    p = model.predict_proba_late(X)
    assert classification_metrics(y, p)["roc_auc"] > 0.9
    unseen = X.head(2).assign(priority=["never-seen", None])
    assert np.isfinite(model.predict_proba_late(unseen)).all()


def test_paired_gain_weights_equal_resampled_orders():
    """Weighting examples by their order's draw count is the same as resampling orders."""
    from training.evaluate import _pr_auc

    rng = np.random.default_rng(1)
    orders = np.repeat(np.arange(40), 3)
    y = np.repeat(rng.random(40) < 0.4, 3).astype(float)
    score = rng.random(120)
    draw = rng.integers(0, 40, 40)
    rows = np.concatenate([np.flatnonzero(orders == o) for o in draw])
    weight = np.bincount(draw, minlength=40)[orders].astype(float)
    assert _pr_auc(y, score, weight) == pytest.approx(_pr_auc(y[rows], score[rows]))


def test_paired_gain_is_sure_of_a_real_gain_and_of_none():
    from training.evaluate import paired_gain

    rng = np.random.default_rng(0)
    orders = np.repeat(np.arange(400), 2)
    y = np.repeat(rng.random(400) < 0.3, 2).astype(float)
    noise = rng.normal(0, 1, 800)
    good, poor = y + 0.5 * noise, y + 2.0 * noise
    gain = paired_gain(y, good, poor, orders, n_boot=100)
    assert gain["gain"] > 0.1 and gain["ci_low"] > 0.05 and gain["p_no_gain"] == 0.0
    assert gain["ci_low"] < gain["gain"] < gain["ci_high"]
    same = paired_gain(y, good, good, orders, n_boot=20)
    assert same == {"gain": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_no_gain": 1.0}
    # Reproducible for a seed.
    assert paired_gain(y, good, poor, orders, n_boot=30, seed=3) == paired_gain(
        y, good, poor, orders, n_boot=30, seed=3
    )
