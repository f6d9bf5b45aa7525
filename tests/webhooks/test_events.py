"""Which orders become events between two runs (pure function, tiny frames)."""

from __future__ import annotations

import pytest
from webhook_helpers import ranked

from serving.webhooks import WebhookConfig, find_events


def events(current, previous, **kw):
    out = find_events(current, previous, **{"threshold": 0.7, "risk_step": 0.2, **kw})
    return sorted(zip(out["order_id"], out["event"], strict=True))


def test_crossing_and_rising_are_separate_events():
    before = ranked({"A": 0.90, "B": 0.30, "C": 0.50, "E": 0.10})
    after = ranked({"A": 0.95, "B": 0.75, "C": 0.60, "D": 0.80, "E": 0.35})
    assert events(after, before) == [
        ("B", "risk_rose"),  # +0.45
        ("B", "threshold_crossed"),  # 0.30 -> 0.75
        ("D", "threshold_crossed"),  # new order above the threshold
        ("E", "risk_rose"),  # +0.25, still below the threshold
    ]


def test_previous_risk_is_carried_and_first_run_has_none():
    before = ranked({"B": 0.30})
    after = ranked({"B": 0.75, "D": 0.8})
    out = find_events(after, before, threshold=0.7, risk_step=0.9).set_index("order_id")
    assert out.loc["B", "previous_risk"] == pytest.approx(0.30)
    assert out["previous_risk"].isna().loc["D"]
    first = find_events(after, None, threshold=0.7, risk_step=0.1)
    assert sorted(first["order_id"]) == ["B", "D"]
    assert set(first["event"]) == {"threshold_crossed"}


def test_exactly_at_threshold_counts_and_staying_above_does_not():
    before = ranked({"A": 0.70, "B": 0.69})
    after = ranked({"A": 0.71, "B": 0.70})
    assert events(after, before) == [("B", "threshold_crossed")]


def test_plant_and_customer_filters():
    plants = {"A": "P1", "B": "P2"}
    after = ranked({"A": 0.9, "B": 0.9}, plants=plants)
    assert events(after, None, plant_id="P2") == [("B", "threshold_crossed")]
    assert events(after, None, customer_id="nobody") == []


def test_backoff_doubles_up_to_the_cap():
    cfg = WebhookConfig(backoff_base_seconds=2, backoff_cap_seconds=30)
    assert [cfg.backoff(n).total_seconds() for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_config_reads_settings_fields_when_present():
    class S:
        webhook_backoff_base_seconds = 0.5
        webhook_max_failures = 3

    cfg = WebhookConfig.from_settings(S())
    assert (cfg.backoff_base_seconds, cfg.max_failures, cfg.risk_step) == (0.5, 3, 0.2)
