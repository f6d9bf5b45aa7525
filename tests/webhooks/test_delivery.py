"""Deliveries against a real HTTP receiver on 127.0.0.1: signed, retried, resumed, never lost."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from webhook_helpers import Receiver, record

from serving.store import home_store
from serving.webhooks import WebhookConfig, WebhookStore, WebhookWorker, verify_signature

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LOCAL = ("127.0.0.1",)
"""The receivers of these tests listen on 127.0.0.1: allowed explicitly (refused by default)."""
FAST = WebhookConfig(
    backoff_base_seconds=1, backoff_cap_seconds=8, max_failures=3, allow_hosts=LOCAL
)
PAYLOAD_FIELDS = {
    "event",
    "idempotency_key",
    "order_id",
    "risk",
    "previous_risk",
    "top_stage",
    "reasons",
    "plant_id",
    "customer_id",
    "due_date",
    "model_version",
    "scored_at",
}


def drive(store: WebhookStore, start: datetime, seconds: int, step: float = 1.0) -> datetime:
    """Run the sender on a simulated clock from ``start`` for ``seconds``."""
    now = start
    while now <= start + timedelta(seconds=seconds):
        store.process_new_runs(now=now)
        store.deliver_due(now=now)
        now += timedelta(seconds=step)
    return now


def test_signature_verifies_and_payload_is_complete(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), FAST)
    secret = "s3cret-for-the-test-0123456789"
    hook = store.register(receiver.url, 0.7, secret=secret).webhook
    record(tmp_path, {"A": 0.91, "B": 0.20})
    WebhookWorker(store).run_once()

    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] == expected
    wrong = "sha256=" + hmac.new(b"other", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] != wrong
    # What a receiver in Python does with the request (docs/integrations.md).
    header = got.headers["X-OTD-Signature"]
    assert verify_signature(secret, got.body, header)
    assert not verify_signature(secret, got.body.replace(b'"A"', b'"Z"'), header)
    assert not verify_signature("another-secret-0123456789", got.body, header)
    assert not verify_signature(secret, got.body, None)
    payload = got.payload
    assert PAYLOAD_FIELDS <= set(payload)
    assert got.headers["Idempotency-Key"] == payload["idempotency_key"]
    assert (payload["event"], payload["order_id"], payload["risk"]) == (
        "threshold_crossed",
        "A",
        0.91,
    )
    assert payload["previous_risk"] is None and payload["model_version"] == "7"
    assert payload["top_stage"] == "procurement" and payload["due_date"] == "2025-03-01"
    assert payload["reasons"][0] == "supplier of A is late"
    [delivery] = store.deliveries(hook.webhook_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_generated_secret_signs_and_chinese_stage_names(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), FAST)
    created = store.register(receiver.url, 0.5, lang="zh")
    assert len(created.secret) >= 32
    record(tmp_path, {"A": 0.6})
    WebhookWorker(store).run_once()
    got = receiver.requests[0]
    mac = hmac.new(created.secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-OTD-Signature"] == f"sha256={mac}"
    assert json.loads(got.body.decode("utf-8"))["top_stage_name"] == "采购"


def test_receiver_failing_its_first_3_attempts_gets_every_event_exactly_once(tmp_path):
    receiver = Receiver(fail_first=3)
    try:
        store = WebhookStore(home_store(tmp_path), FAST)
        hook = store.register(receiver.url, 0.5).webhook
        record(tmp_path, {"A": 0.9, "B": 0.8, "C": 0.6, "D": 0.1})
        record(tmp_path, {"A": 0.95, "B": 0.8, "C": 0.6, "D": 0.7, "E": 0.55})
        drive(store, T0, 30)
    finally:
        receiver.close()
    # run 1: A, B, C cross; run 2: D crosses and rises (+0.6: one event, both its triggers),
    # E is new and crosses.
    keys = Counter(r.headers["Idempotency-Key"] for r in receiver.accepted)
    assert sum(keys.values()) == 5 and set(keys.values()) == {1}
    assert len(receiver.requests) == 5 + 3
    sent = Counter((r.payload["order_id"], r.payload["event"]) for r in receiver.accepted)
    assert sent == Counter([(o, "threshold_crossed") for o in "ABCDE"])
    [d] = [r.payload for r in receiver.accepted if r.payload["order_id"] == "D"]
    assert d["triggers"] == ["threshold_crossed", "risk_rose"]
    deliveries = store.deliveries(hook.webhook_id)
    assert {d.status for d in deliveries} == {"delivered"}
    assert sum(d.attempts for d in deliveries) == 8
    assert store.get(hook.webhook_id).status == "active"
    # Running the sender again, or re-reading the runs, sends nothing more.
    drive(store, T0 + timedelta(hours=1), 3)
    assert store.process_new_runs() == 0 and len(receiver.requests) == 8


def test_retries_back_off_exponentially(tmp_path):
    receiver = Receiver(down=True)
    try:
        store = WebhookStore(home_store(tmp_path), FAST)
        hook = store.register(receiver.url, 0.5).webhook
        record(tmp_path, {"A": 0.9})
        drive(store, T0, 30, step=0.5)
    finally:
        receiver.close()
    # Attempts at 0, 1, 3, 7, 15, 23 s (waits 1, 2, 4, 8, 8 capped): 6 within 30 s.
    assert len(receiver.requests) == 6
    [d] = store.deliveries(hook.webhook_id)
    assert d.status == "pending" and d.attempts == 6
    assert d.next_attempt_at == T0 + timedelta(seconds=31)


def test_restart_mid_retry_loses_nothing(tmp_path):
    receiver = Receiver(down=True)
    try:
        store = WebhookStore(home_store(tmp_path), FAST)
        store.register(receiver.url, 0.5)
        record(tmp_path, {"A": 0.9, "B": 0.8, "C": 0.7})
        # The first process ran a minute ago: everything failed once.
        t0 = datetime.now(UTC) - timedelta(minutes=1)
        store.process_new_runs(now=t0)
        store.deliver_due(now=t0)
        # Then it was killed mid-send: it had claimed a delivery (lease taken), never finished.
        assert store._claim(2, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2))
        del store
        receiver.down = False
        # "Restart": a new store and a real background worker over the same database.
        config = WebhookConfig(
            backoff_base_seconds=0.05, backoff_cap_seconds=0.2, poll_seconds=0.05, allow_hosts=LOCAL
        )
        fresh = WebhookStore(home_store(tmp_path), config)
        worker = WebhookWorker(fresh).start()
        deadline = time.monotonic() + 10
        while len(receiver.accepted) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()
        assert not worker.running
    finally:
        receiver.close()
    orders = Counter(r.payload["order_id"] for r in receiver.accepted)
    assert orders == Counter({"A": 1, "B": 1, "C": 1})
    [hook] = fresh.list()
    assert hook.pending == 0 and hook.status == "active"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_receiver_down_for_good_is_marked_failing_and_nothing_is_dropped(tmp_path):
    store = WebhookStore(home_store(tmp_path), FAST)
    hook = store.register(_closed_port_url(), 0.5).webhook
    record(tmp_path, {"A": 0.9, "B": 0.8})
    drive(store, T0, 20)
    hook = store.get(hook.webhook_id)
    assert hook.status == "failing" and hook.failing_since is not None
    assert hook.consecutive_failures >= FAST.max_failures
    assert "ConnectError" in (hook.last_error or "")
    pending = store.deliveries(hook.webhook_id, status="pending")
    assert {d.order_id for d in pending} == {"A", "B"} and all(d.attempts >= 3 for d in pending)
    assert store.list()[0].pending == 2

    # Deleting cancels, and still shows, what was pending.
    store.delete(hook.webhook_id)
    assert {d.status for d in store.deliveries(hook.webhook_id)} == {"cancelled"}
    assert store.list() == []


def test_failing_receiver_recovers_when_back(tmp_path):
    receiver = Receiver(down=True)
    try:
        store = WebhookStore(home_store(tmp_path), FAST)
        hook = store.register(receiver.url, 0.5).webhook
        record(tmp_path, {"A": 0.9})
        end = drive(store, T0, 10)
        assert store.get(hook.webhook_id).status == "failing"
        receiver.down = False
        drive(store, end, 10)
    finally:
        receiver.close()
    assert store.get(hook.webhook_id).status == "active"
    assert len(receiver.accepted) == 1


def test_webhook_registered_after_a_run_gets_only_later_runs(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), FAST)
    record(tmp_path, {"A": 0.9})
    store.register(receiver.url, 0.5)
    record(tmp_path, {"A": 0.9, "B": 0.9})
    drive(store, T0, 1)
    assert [r.payload["order_id"] for r in receiver.accepted] == ["B"]


def test_register_refuses_non_http_urls(tmp_path):
    with pytest.raises(ValueError, match="http"):
        WebhookStore(home_store(tmp_path)).register("ftp://x", 0.5)
