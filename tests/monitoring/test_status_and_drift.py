"""Monitoring's pure parts: drift figures from Evidently and the status rules."""

import numpy as np
import pandas as pd
import pytest

from features.registry import FEATURES, FeatureSpec
from monitoring.drift import compute_drift
from monitoring.status import Thresholds, decide_status


def _frames(shift: float, n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "supplier_on_time_90d": rng.beta(8, 2, n),
            "slack_days": rng.normal(20, 5, n),
            "priority": rng.choice(["normal", "rush"], n, p=[0.8, 0.2]),
            "risk": rng.beta(2, 6, n),
        }
    )
    cur = ref.copy()
    cur["supplier_on_time_90d"] = np.clip(rng.beta(8, 2, n) - shift, 0, 1)
    cur["slack_days"] = rng.normal(20, 5, n)
    cur["priority"] = rng.choice(["normal", "rush"], n, p=[0.8, 0.2])
    cur["risk"] = rng.beta(2, 6, n)
    return ref, cur


def _specs(*names: str) -> list[FeatureSpec]:
    """The registry's specs by name; ``supplier_on_time_90d`` is outside it: a plain number."""
    known = {f.name: f for f in FEATURES}
    plain = FeatureSpec(
        name="supplier_on_time_90d",
        stage="procurement",
        description="",
        template="",
        template_zh="",
        table="purchase_orders",
        unit="number",
    )
    return [known.get(n, plain) for n in names]


def test_no_drift_between_samples_of_one_distribution():
    ref, cur = _frames(shift=0.0)
    result = compute_drift(
        ref, cur, features=_specs("supplier_on_time_90d", "slack_days", "priority")
    )
    assert set(result.features) == {"supplier_on_time_90d", "slack_days", "priority"}
    assert not any(d.drifted for d in result.features.values())
    assert result.drifted_share == 0.0
    assert result.prediction is not None and not result.prediction.drifted


def test_a_shifted_feature_is_flagged_and_the_others_are_not():
    ref, cur = _frames(shift=0.3)
    result = compute_drift(
        ref, cur, features=_specs("supplier_on_time_90d", "slack_days", "priority")
    )
    assert result.features["supplier_on_time_90d"].drifted
    assert result.features["supplier_on_time_90d"].score > 0.5
    assert not result.features["slack_days"].drifted
    assert result.drifted_share == pytest.approx(1 / 3)


def test_large_frames_are_sampled_to_the_cap():
    ref, cur = _frames(shift=0.0, n=5000)
    result = compute_drift(ref, cur, features=_specs("slack_days"), max_rows=1000)
    assert (result.n_reference, result.n_current) == (1000, 1000)


@pytest.mark.parametrize(
    ("share", "pred", "realised", "n", "expected"),
    [
        (0.0, False, 0.60, 500, "ok"),
        (0.25, False, 0.60, 500, "watch"),
        (0.6, False, 0.60, 500, "retrain recommended"),
        (0.0, True, 0.60, 500, "watch"),
        (0.0, False, 0.56, 500, "watch"),  # 0.06 below 0.62: past half the limit
        (0.0, False, 0.45, 500, "retrain recommended"),
        (0.0, False, 0.10, 50, "ok"),  # too few matured orders to judge
    ],
)
def test_status_rules(share, pred, realised, n, expected):
    status, reasons = decide_status(
        drifted_share=share,
        drifted_features=["a"] if share else [],
        prediction_drifted=pred,
        realised_pr_auc=realised,
        n_matured=n,
        reference_pr_auc=0.62,
        thresholds=Thresholds(),
    )
    assert status == expected
    assert reasons


def test_a_prediction_matures_when_its_due_date_is_over_whatever_the_outcome():
    """Early deliveries of orders not yet due are not matured: their late siblings are not
    known yet, and counting them would make recent runs look more on time than they are."""
    from data.dataset import Dataset
    from monitoring.realised import known_outcomes

    utc = lambda *v: pd.to_datetime(list(v), utc=True)  # noqa: E731
    orders = pd.DataFrame(
        {
            "order_id": ["late", "on_time", "overdue", "early_not_due", "open", "cancelled"],
            "created_at": utc(*["2024-03-01 08:00"] * 6),
            "due_date": pd.to_datetime(
                ["2024-03-05", "2024-03-06", "2024-03-07", "2024-03-20", "2024-03-20", "2024-03-05"]
            ),
            "delivered_at": utc(
                "2024-03-06 10:00", "2024-03-05 10:00", None, "2024-03-09 10:00", None, None
            ),
            "cancelled_at": utc(None, None, None, None, None, "2024-03-02 10:00"),
        }
    )
    out = known_outcomes(Dataset(orders=orders), pd.Timestamp("2024-03-10 12:00", tz="UTC"))
    assert dict(zip(out["order_id"], out["late"], strict=True)) == {
        "late": 1,
        "on_time": 0,
        "overdue": 1,
    }
    # With three days of grace, the order due on the 7th is not settled on the 10th and the one
    # delivered a day late is on time.
    graced = known_outcomes(Dataset(orders=orders), pd.Timestamp("2024-03-10 12:00", tz="UTC"), 3)
    assert dict(zip(graced["order_id"], graced["late"], strict=True)) == {"late": 0, "on_time": 0}


def test_realised_forecast_error_and_coverage_on_delivered_matured_orders():
    """Beside realised accuracy: the forecast's MAE and how often the days late fell inside its
    intervals, on matured orders already delivered (an overdue undelivered order has no final
    lateness yet)."""
    from data.dataset import Dataset
    from monitoring.realised import known_outcomes, realised_performance

    utc = lambda *v: pd.to_datetime(list(v), utc=True)  # noqa: E731
    orders = pd.DataFrame(
        {
            "order_id": ["a", "b", "c", "d"],
            "created_at": utc(*["2024-03-01 08:00"] * 4),
            "due_date": pd.to_datetime(["2024-03-05"] * 4),
            # Days late counted from the end of the due date: +1.5, -0.5, +4.0, undelivered.
            "delivered_at": utc("2024-03-07 12:00", "2024-03-05 12:00", "2024-03-10 00:00", None),
        }
    )
    outcomes = known_outcomes(Dataset(orders=orders), pd.Timestamp("2024-03-12", tz="UTC"))
    np.testing.assert_allclose(
        outcomes.set_index("order_id")["days_late"].loc[["a", "b", "c"]], [1.5, -0.5, 4.0]
    )
    scored = pd.DataFrame(
        {
            "order_id": ["a", "b", "c", "d"],
            "risk": [0.9, 0.2, 0.7, 0.8],
            "predicted_days_late": [1.0, 0.0, 1.0, 2.0],
            "days_late_p10": [0.0, -1.0, 0.0, 1.0],
            "days_late_p90": [2.0, 1.0, 2.0, 3.0],  # c's 4.0 falls outside
            "days_late_p025": [-1.0, -2.0, -1.0, 0.0],
            "days_late_p975": [3.0, 2.0, 5.0, 4.0],
        }
    )
    realised = realised_performance(scored, outcomes)
    assert realised.n_matured == 4 and realised.n_delivered == 3
    assert realised.mae_days == pytest.approx((0.5 + 0.5 + 3.0) / 3)
    assert realised.coverage_80 == pytest.approx(2 / 3)
    assert realised.coverage_95 == pytest.approx(1.0)
    # A run scored by a model without a forecast says nothing about it.
    plain = realised_performance(scored[["order_id", "risk"]], outcomes)
    assert plain.coverage_80 is None and plain.n_delivered == 0
