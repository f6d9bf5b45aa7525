"""Forecast events: an order whose predicted delivery moves past its due date (``forecast_late``)
or by at least the step (``forecast_moved``), between two runs; none without a forecast; every
event's body carries the forecast. Pure function on tiny frames, then a real receiver."""

from __future__ import annotations

import pytest
from webhook_helpers import ranked, record

from otd_risk.settings import Settings
from serving.store import home_store
from serving.webhooks import EVENTS, WebhookConfig, WebhookStore, WebhookWorker, find_events

LOCAL = WebhookConfig(allow_hosts=("127.0.0.1",))
FORECAST_FIELDS = {
    "predicted_days_late",
    "days_late_p10",
    "days_late_p90",
    "days_late_p025",
    "days_late_p975",
    "predicted_delivery_date",
    "past_due_days",
    "stage_days",
    "previous_predicted_days_late",
    "previous_predicted_delivery_date",
    "forecast_step_days",
}


def forecast_events(current, previous, step: float = 3.0) -> list[tuple[str, str]]:
    """(order, event) of the forecast events only; risks stay put in these frames."""
    out = find_events(current, previous, threshold=2.0, risk_step=1.0, forecast_step_days=step)
    return sorted(zip(out["order_id"], out["event"], strict=True))


def run(days_late: dict[str, float], due: dict[str, str] | None = None):
    return ranked({o: 0.5 for o in days_late}, days_late=days_late, due=due)


def test_moving_past_the_due_date_is_forecast_late():
    before = run({"A": -1.0, "B": 0.0, "C": 0.5, "D": -2.0, "E": -0.2})
    after = run({"A": 0.5, "B": 0.1, "C": 2.0, "D": -0.5, "E": -0.2, "N": 4.0})
    # A and B were on time or early, now late; C was late already; D and E are still on time;
    # N is new (no previous forecast to move from).
    assert forecast_events(after, before) == [("A", "forecast_late"), ("B", "forecast_late")]


@pytest.mark.parametrize(
    ("before", "after", "step", "moved"),
    [
        (1.0, 4.5, 3.0, True),  # 3.5 days later
        (1.0, 3.9, 3.0, False),  # 2.9
        (5.0, 1.9, 3.0, True),  # 3.1 days earlier
        (2.0, 5.0, 3.0, True),  # exactly the step
        (1.0, 4.5, 5.0, False),  # a larger step
        (1.0, 2.5, 1.0, True),  # a smaller one
    ],
)
def test_moving_by_the_step_either_way_is_forecast_moved(before, after, step, moved):
    got = forecast_events(run({"A": after}), run({"A": before}), step)
    assert (("A", "forecast_moved") in got) == moved
    assert ("A", "forecast_late") not in got  # late in both runs


def test_the_movement_is_of_the_delivery_date_not_of_the_days_late():
    before = run({"A": 1.0, "B": 1.0})
    # A's due date moved 4 days later and it is as late against it: delivery 4 days later.
    # B's moved 3 days later and it is 3 days less late: the same delivery, no movement.
    after = run({"A": 1.0, "B": -2.0}, due={"A": "2025-03-05", "B": "2025-03-04"})
    assert forecast_events(after, before) == [("A", "forecast_moved")]


def test_runs_without_a_forecast_make_no_forecast_events():
    without = ranked({"A": 0.5, "B": 0.5})
    with_forecast = run({"A": 9.0, "B": -9.0})
    assert forecast_events(with_forecast, without) == []
    assert forecast_events(without, with_forecast) == []
    assert forecast_events(without, ranked({"A": 0.2, "B": 0.5})) == []
    assert forecast_events(with_forecast, None) == []


def test_forecast_events_follow_the_plant_filter():
    before = ranked({"A": 0.5, "B": 0.5}, days_late={"A": -1.0, "B": -1.0})
    plants = {"A": "P1", "B": "P2"}
    after = ranked({"A": 0.5, "B": 0.5}, plants=plants, days_late={"A": 3.0, "B": 3.0})
    out = find_events(after, before, threshold=2.0, risk_step=1.0, plant_id="P2")
    assert sorted(zip(out["order_id"], out["event"], strict=True)) == [
        ("B", "forecast_late"),
        ("B", "forecast_moved"),
    ]


def test_the_step_is_a_setting_passed_down_to_the_config(tmp_path, monkeypatch):
    assert WebhookConfig.from_settings(Settings(home=tmp_path)).forecast_step_days == 3.0
    monkeypatch.setenv("OTD_RISK_WEBHOOK_FORECAST_STEP_DAYS", "5.5")
    assert WebhookConfig.from_settings(Settings(home=tmp_path)).forecast_step_days == 5.5
    with pytest.raises(ValueError, match="webhook_forecast_step_days"):
        Settings(home=tmp_path, webhook_forecast_step_days=0)


def sent(receiver) -> dict[tuple[str, str], dict]:
    return {(r.payload["order_id"], r.payload["event"]): r for r in receiver.accepted}


def test_a_receiver_gets_forecast_events_with_the_forecast(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), WebhookConfig(allow_hosts=("127.0.0.1",)))
    store.register(receiver.url, 0.95)
    risks = {"A": 0.5, "B": 0.5, "C": 0.5, "D": 0.5}
    record(tmp_path, risks, days_late={"A": -1.0, "B": 1.0, "C": -0.5, "D": 2.0})
    WebhookWorker(store).run_once()
    assert receiver.accepted == []  # a first run has nothing to move from
    record(tmp_path, risks, days_late={"A": 0.5, "B": 4.5, "C": -0.4, "D": 3.0})
    WebhookWorker(store).run_once()
    got = sent(receiver)
    assert set(got) == {("A", "forecast_late"), ("B", "forecast_moved")}
    for (_, event), request in got.items():
        assert request.headers["X-OTD-Event"] == event and event in EVENTS
        assert FORECAST_FIELDS <= set(request.payload)
    late = got[("A", "forecast_late")].payload
    assert (late["predicted_days_late"], late["previous_predicted_days_late"]) == (0.5, -1.0)
    assert late["predicted_delivery_date"] == "2025-03-02"  # half a day after 1 March ended
    assert late["previous_predicted_delivery_date"] == "2025-03-01"
    assert (late["days_late_p10"], late["days_late_p90"]) == (-0.5, 2.0)
    assert (late["days_late_p025"], late["days_late_p975"]) == (-1.5, 3.5)
    assert late["stage_days"] == {"confirmation": 0.2, "procurement": 0.5, "shipping": -0.3}
    assert late["past_due_days"] == 0.0 and late["forecast_step_days"] == 3.0
    moved = got[("B", "forecast_moved")].payload
    assert (moved["previous_predicted_days_late"], moved["predicted_days_late"]) == (1.0, 4.5)
    assert moved["predicted_delivery_date"] == "2025-03-06"


def test_the_configured_step_decides(tmp_path, receiver):
    store = WebhookStore(
        home_store(tmp_path), WebhookConfig(allow_hosts=("127.0.0.1",), forecast_step_days=4)
    )
    store.register(receiver.url, 0.95)
    record(tmp_path, {"A": 0.5, "B": 0.5}, days_late={"A": 1.0, "B": 1.0})
    record(tmp_path, {"A": 0.5, "B": 0.5}, days_late={"A": 4.5, "B": 5.0})
    WebhookWorker(store).run_once()
    assert set(sent(receiver)) == {("B", "forecast_moved")}
    assert sent(receiver)[("B", "forecast_moved")].payload["forecast_step_days"] == 4


def test_every_event_carries_the_forecast_and_none_without_one(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), LOCAL)
    store.register(receiver.url, 0.7)
    record(tmp_path, {"A": 0.4, "B": 0.9})
    record(tmp_path, {"A": 0.9, "B": 0.9}, days_late={"A": 6.0, "B": -3.0})
    WebhookWorker(store).run_once()
    got = sent(receiver)
    # The first run had no forecast: no forecast events, though A "moved" from nothing. One
    # event per order: A's crossing and rise are one, both in its triggers.
    assert set(got) == {("A", "threshold_crossed"), ("B", "threshold_crossed")}
    crossed = got[("A", "threshold_crossed")].payload
    assert crossed["triggers"] == ["threshold_crossed", "risk_rose"]
    assert FORECAST_FIELDS <= set(crossed)
    assert crossed["predicted_days_late"] == 6.0 and crossed["days_late_p90"] == 7.5
    assert crossed["predicted_delivery_date"] == "2025-03-08"
    assert crossed["previous_predicted_days_late"] is None
    assert crossed["previous_predicted_delivery_date"] is None
    # B was scored without a forecast in the first run, with one now: no forecast event, and
    # its first event (threshold_crossed in the first run) had a null forecast.
    first = [r.payload for r in receiver.accepted if r.payload["order_id"] == "B"]
    assert [p["event"] for p in first] == ["threshold_crossed"]
    assert first[0]["predicted_days_late"] is None and first[0]["stage_days"] == {}
    assert first[0]["predicted_delivery_date"] is None and first[0]["past_due_days"] is None
    assert b"NaN" not in b"".join(r.body for r in receiver.accepted)
