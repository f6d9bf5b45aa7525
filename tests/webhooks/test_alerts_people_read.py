"""Alerts people keep reading (issue 18), against a real receiver on 127.0.0.1: one event per
order only when something a planner acts on changed since what that receiver was last told;
nothing for an acknowledged order until its acknowledgement lapses; a cap per receiver and run
with the overflow in one digest; every event says what changed; subscriptions by owners,
plants and customers."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from webhook_helpers import AS_OF, ranked

from otd_risk.settings import Settings
from serving.acks import AckIn, AckStore
from serving.app import ServeOptions, create_app
from serving.keys import create_key
from serving.runs import record_run
from serving.store import Store, home_store
from serving.webhooks import WebhookConfig, WebhookStore, WebhookWorker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from store_helpers import postgres_schema, schema_url  # noqa: E402

LOCAL = WebhookConfig(allow_hosts=("127.0.0.1",))
STAGES = ("procurement", "production", "shipping", "quality", "planning")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """The serving store these tests run on: SQLite under a home, or a private schema of the
    test PostgreSQL (skipped, saying why, without one)."""
    if request.param == "sqlite":
        yield home_store(tmp_path)
        return
    with postgres_schema("alerts") as (base, schema):
        store = Store(schema_url(base, schema))
        yield store
        store.engine.dispose()


def record(db: Store, risks: dict[str, float], stages: dict[str, str] | None = None, **kw):
    """A recorded run; top stages procurement unless ``stages`` says, reasons naming them."""
    frame = ranked(risks, **kw)
    frame["top_stage"] = [(stages or {}).get(o, "procurement") for o in frame["order_id"]]
    frame["reasons"] = [
        [f"the {s} stage of {o} is late"]
        for o, s in frame[["order_id", "top_stage"]].itertuples(index=False)
    ]
    return record_run(
        db,
        frame,
        model_version="7",
        model_run_id=None,
        as_of=AS_OF,
        data_fingerprint="f" * 16,
    )


def sender(db: Store, key_home: Path, **register) -> tuple[WebhookStore, WebhookWorker]:
    store = WebhookStore(db, LOCAL, key_home=key_home)
    store.register(register.pop("url"), register.pop("threshold", 0.5), **register)
    return store, WebhookWorker(store)


def payloads(receiver) -> list[dict]:
    return [r.payload for r in receiver.accepted]


def test_a_second_run_with_unchanged_data_sends_no_event(db, tmp_path, receiver):
    store, worker = sender(db, tmp_path, url=receiver.url)
    risks = {"A": 0.9, "B": 0.8, "C": 0.6, "D": 0.2}
    record(db, risks, {"B": "shipping"}, days_late={"A": 3, "B": 1, "C": -1, "D": -2})
    worker.run_once()
    assert sorted(p["order_id"] for p in payloads(receiver)) == ["A", "B", "C"]
    record(db, risks, {"B": "shipping"}, days_late={"A": 3, "B": 1, "C": -1, "D": -2})
    assert store.process_new_runs() == 0
    worker.run_once()
    assert len(receiver.requests) == 3


def test_a_risk_that_wobbles_around_the_threshold_is_announced_once(db, tmp_path, receiver):
    store, worker = sender(db, tmp_path, url=receiver.url, threshold=0.7)
    for risk in (0.75, 0.65, 0.75, 0.69, 0.72):
        record(db, {"A": risk})
        worker.run_once()
    # Against the previous run it crossed three times; the receiver was told once.
    assert [(p["event"], p["risk"]) for p in payloads(receiver)] == [("threshold_crossed", 0.75)]


def test_an_acknowledged_order_sends_none_until_its_risk_rises_by_the_step(db, tmp_path, receiver):
    store, worker = sender(db, tmp_path, url=receiver.url, risk_step=0.05)
    run = record(db, {"A": 0.6, "B": 0.6})
    worker.run_once()
    assert sorted(p["order_id"] for p in payloads(receiver)) == ["A", "B"]
    AckStore.for_store(db).create(
        "A",
        AckIn(until_risk_rises_by=0.1, note="expedited"),
        owner="purchasing",
        key_id="k",
        by="planner-1",
        risk=0.6,
        run_id=run.run_id,
    )
    # +0.09 (more than the webhook's step, less than the acknowledgement's), a new top stage:
    # B, not acknowledged, is sent; A is not.
    record(db, {"A": 0.69, "B": 0.69}, {"A": "shipping", "B": "shipping"})
    worker.run_once()
    assert [p["order_id"] for p in payloads(receiver)[2:]] == ["B"]
    assert payloads(receiver)[2]["triggers"] == ["risk_rose", "stage_changed"]
    # +0.1: the acknowledgement's step, it lapses: A is sent, saying so.
    record(db, {"A": 0.7, "B": 0.69}, {"A": "shipping", "B": "shipping"})
    worker.run_once()
    [lapsed] = payloads(receiver)[3:]
    assert lapsed["order_id"] == "A"
    assert lapsed["triggers"] == ["risk_rose", "stage_changed", "ack_lapsed"]
    assert lapsed["changed"]["risk"] == {"before": 0.6, "after": 0.7}
    assert lapsed["changed"]["top_stage"] == {"before": "procurement", "after": "shipping"}
    assert lapsed["changed"]["acknowledgement"]["lapsed"] == "risk_rose"
    assert lapsed["changed"]["acknowledgement"]["risk_when_acknowledged"] == 0.6
    # Once said, a lapsed acknowledgement is not said again.
    record(db, {"A": 0.7, "B": 0.69}, {"A": "shipping", "B": "shipping"})
    worker.run_once()
    assert len(receiver.accepted) == 4


def test_an_acknowledgement_until_a_date_holds_until_that_date_has_passed(db, tmp_path, receiver):
    store, worker = sender(db, tmp_path, url=receiver.url)
    record(db, {"A": 0.4})
    worker.run_once()
    AckStore.for_store(db).create(
        "A",
        AckIn(until="2030-01-05"),
        owner=None,
        key_id="k",
        by="planner-1",
        risk=0.4,
        run_id=None,
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )
    record(db, {"A": 0.9})
    store.process_new_runs(now=datetime(2030, 1, 5, 23, tzinfo=UTC))  # through its date
    store.deliver_due(now=datetime(2030, 1, 5, 23, tzinfo=UTC))
    assert receiver.accepted == []
    record(db, {"A": 0.9})
    store.process_new_runs(now=datetime(2030, 1, 6, 1, tzinfo=UTC))
    store.deliver_due(now=datetime(2030, 1, 6, 1, tzinfo=UTC))
    [event] = payloads(receiver)
    assert event["triggers"] == ["threshold_crossed", "risk_rose", "ack_lapsed"]
    # Since it was acknowledged (at 0.4), not since the run it was silenced in (at 0.9).
    assert event["changed"]["risk"] == {"before": 0.4, "after": 0.9}
    assert event["changed"]["acknowledgement"]["lapsed"] == "until_passed"


def test_a_cap_of_10_with_50_qualifying_orders_sends_10_events_and_one_digest(
    db, tmp_path, receiver
):
    store, worker = sender(db, tmp_path, url=receiver.url, max_events_per_run=10)
    risks = {f"O{i:02d}": 0.99 - i * 0.005 for i in range(50)}
    risks.update({f"L{i}": 0.1 for i in range(5)})  # below the threshold: not counted
    stages = {o: STAGES[i % len(STAGES)] for i, o in enumerate(sorted(risks))}
    record(db, risks, stages)
    worker.run_once()
    got = payloads(receiver)
    events = [p for p in got if p["event"] != "digest"]
    [digest] = [p for p in got if p["event"] == "digest"]
    assert len(got) == 11
    assert [p["order_id"] for p in events] == [f"O{i:02d}" for i in range(10)]  # riskiest
    assert digest["orders"] == 40
    overflow = [f"O{i:02d}" for i in range(10, 50)]
    by_stage: dict[str, int] = {}
    for o in overflow:
        by_stage[stages[o]] = by_stage.get(stages[o], 0) + 1
    assert digest["by_stage"] == by_stage
    assert sum(digest["by_owner"].values()) == 40
    assert digest["by_owner"]["purchasing"] == by_stage["procurement"]
    assert digest["by_owner"]["logistics"] == by_stage["shipping"]
    assert [o["order_id"] for o in digest["top_orders"]] == overflow[:10]
    assert digest["changed"] == {"orders": 40, "triggers": {"threshold_crossed": 40}}
    assert all(o["changed"]["risk"]["after"] == o["risk"] for o in digest["top_orders"])
    # Orders counted in a digest were told: the same run again sends nothing.
    record(db, risks, stages)
    worker.run_once()
    assert len(receiver.accepted) == 11


def test_every_events_changed_is_filled(db, tmp_path, receiver):
    store, worker = sender(db, tmp_path, url=receiver.url, threshold=0.7)
    record(
        db,
        {"A": 0.8, "B": 0.3, "C": 0.5, "D": 0.9},
        days_late={"A": 1, "B": -1, "C": 1, "D": -2},
    )
    worker.run_once()
    record(
        db,
        {"A": 0.8, "B": 0.75, "C": 0.75, "D": 0.9, "N": 0.95},
        {"A": "shipping"},
        days_late={"A": 1, "B": -1, "C": 1, "D": 0.5, "N": 2},
    )
    worker.run_once()
    got = payloads(receiver)
    assert len(got) == 2 + 5
    for p in got:
        changed = p["changed"]
        assert set(changed) >= {"risk", "top_stage", "predicted_delivery_date", "new_reasons"}
        assert changed["risk"]["after"] == p["risk"]
        assert changed["top_stage"]["after"] == p["top_stage"]
        assert changed["predicted_delivery_date"]["after"] == p["predicted_delivery_date"]
        assert p["owner"] in ("purchasing", "logistics")
    second = {p["order_id"]: p for p in got[2:]}
    assert second["A"]["event"] == "stage_changed"
    assert second["A"]["changed"]["top_stage"] == {"before": "procurement", "after": "shipping"}
    assert second["A"]["changed"]["new_reasons"] == ["the shipping stage of A is late"]
    assert second["A"]["owner"] == "logistics"
    assert second["B"]["changed"]["risk"] == {"before": 0.3, "after": 0.75}
    assert second["D"]["event"] == "forecast_late"
    assert second["D"]["changed"]["predicted_delivery_date"] == {
        "before": "2025-02-28",
        "after": "2025-03-02",
    }
    assert second["N"]["changed"]["risk"] == {"before": None, "after": 0.95}
    assert second["N"]["changed"]["new_reasons"] == ["the procurement stage of N is late"]


def test_subscriptions_by_owners_plants_and_customers(db, tmp_path, receiver):
    store = WebhookStore(db, LOCAL, key_home=tmp_path)
    store.register(receiver.url, 0.5, owners=["物流"], plants=["P1", "P3"])
    nobody = store.register(receiver.url, 0.5, customers=["nobody"]).webhook
    record(
        db,
        {"A": 0.9, "B": 0.9, "C": 0.9, "D": 0.9},
        {"A": "shipping", "B": "shipping", "C": "procurement", "D": "shipping"},
        plants={"A": "P1", "B": "P2", "C": "P1", "D": "P3"},
    )
    WebhookWorker(store).run_once()
    assert sorted(p["order_id"] for p in payloads(receiver)) == ["A", "D"]
    hook, _ = store.list()
    assert (hook.owners, hook.plants, hook.customers) == (["物流"], ["P1", "P3"], None)
    assert store.deliveries(nobody.webhook_id) == []


def test_a_subscription_to_an_owner_no_stage_has_is_422(tmp_path, receiver):
    admin = create_key(home_store(tmp_path), "admin").key
    settings = Settings(home=tmp_path, webhook_allow_hosts=["127.0.0.1"])
    app = create_app(settings, ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        body = {"url": receiver.url, "threshold": 0.5, "owners": ["nobody"]}
        r = client.post("/v1/webhooks", json=body, headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_owner"
        assert "body.owners" in r.json()["error"]["message"]
        body = {**body, "owners": ["logistics"], "max_events_per_run": 10}
        r = client.post("/v1/webhooks", json=body, headers=headers)
        assert r.status_code == 201
        assert (r.json()["owners"], r.json()["max_events_per_run"]) == (["logistics"], 10)
        r = client.post("/v1/webhooks", json={**body, "max_events_per_run": 0}, headers=headers)
        assert r.status_code == 422


@pytest.mark.parametrize("cap", [1, 3])
def test_one_event_per_order_whatever_its_triggers(db, tmp_path, receiver, cap):
    store, worker = sender(db, tmp_path, url=receiver.url, max_events_per_run=cap)
    record(db, {"A": 0.3}, days_late={"A": -1})
    worker.run_once()
    record(db, {"A": 0.9}, {"A": "shipping"}, days_late={"A": 5})
    worker.run_once()
    [event] = payloads(receiver)
    assert event["triggers"] == [
        "threshold_crossed",
        "forecast_late",
        "risk_rose",
        "stage_changed",
        "forecast_moved",
    ]


def test_the_default_cap_is_a_setting_passed_down_to_the_config(tmp_path, monkeypatch):
    from otd_risk.settings import Settings
    from serving.webhooks.config import WebhookConfig

    assert WebhookConfig.from_settings(Settings(home=tmp_path)).max_events_per_run == 50
    monkeypatch.setenv("OTD_RISK_WEBHOOK_MAX_EVENTS_PER_RUN", "7")
    assert WebhookConfig.from_settings(Settings(home=tmp_path)).max_events_per_run == 7
    with pytest.raises(ValueError, match="webhook_max_events_per_run"):
        Settings(home=tmp_path, webhook_max_events_per_run=0)
