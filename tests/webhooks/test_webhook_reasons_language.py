"""Webhook payloads carry the reasons in the webhook's language, from the run's stored
translations; a run recorded before translations were stored sends what it has."""

from __future__ import annotations

import pandas as pd
from webhook_helpers import ranked

from serving.runs import record_run
from serving.store import home_store
from serving.webhooks import WebhookConfig, WebhookStore, WebhookWorker

FAST = WebhookConfig(
    backoff_base_seconds=1, backoff_cap_seconds=8, max_failures=3, allow_hosts=("127.0.0.1",)
)


def record_translated(home, risks: dict[str, float]) -> None:
    frame = ranked(risks)
    frame["reasons_en"] = frame["reasons"]
    frame["reasons_zh"] = [[f"{o} 的供应商延迟"] for o in frame["order_id"]]
    record_run(
        home_store(home),
        frame,
        model_version="7",
        model_run_id=None,
        as_of=pd.Timestamp("2025-02-19", tz="UTC"),
        data_fingerprint="f" * 16,
    )


def test_each_webhook_gets_reasons_in_its_language(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), FAST)
    store.register(receiver.url, 0.5, lang="zh", description="zh")
    store.register(receiver.url, 0.5, lang="en", description="en")
    record_translated(tmp_path, {"A": 0.9, "B": 0.1})
    WebhookWorker(store).run_once()

    by_stage_name = {r.payload["top_stage_name"]: r.payload for r in receiver.accepted}
    assert set(by_stage_name) == {"采购", "Procurement"}
    zh, en = by_stage_name["采购"], by_stage_name["Procurement"]
    assert zh["order_id"] == en["order_id"] == "A"
    assert zh["reasons"] == ["A 的供应商延迟"]
    assert en["reasons"] == ["supplier of A is late", "=cmd|' /C calc'!A0"]


def test_a_run_without_translations_sends_its_own_reasons(tmp_path, receiver):
    store = WebhookStore(home_store(tmp_path), FAST)
    store.register(receiver.url, 0.5, lang="zh")
    record_run(
        home_store(tmp_path),
        ranked({"A": 0.9}),
        model_version="7",
        model_run_id=None,
        as_of=pd.Timestamp("2025-02-19", tz="UTC"),
        data_fingerprint="f" * 16,
    )
    WebhookWorker(store).run_once()
    [got] = receiver.accepted
    assert got.payload["reasons"][0] == "supplier of A is late"
