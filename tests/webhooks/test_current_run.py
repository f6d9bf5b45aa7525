"""Which scoring run is current (the planners' list, the webhooks' comparison): of the dataset
scored last, the latest as_of, then the latest recorded. A back-dated run of the same dataset
changes nothing and sends nothing; a run of another dataset takes over whatever its dates."""

from __future__ import annotations

import pandas as pd
from webhook_helpers import Receiver, ranked

from serving.runs import latest_run, list_runs, record_run
from serving.store import home_store
from serving.webhooks import WebhookConfig, WebhookStore, WebhookWorker

LOCAL = WebhookConfig(allow_hosts=("127.0.0.1",))
SNAPSHOT = pd.Timestamp("2024-12-31T15:00:00Z")


def run(home, risks, as_of, source="/exports/erp"):
    return record_run(
        home_store(home),
        ranked(risks),
        model_version="7",
        model_run_id=None,
        as_of=as_of,
        data_fingerprint="f" * 16,
        data_source=source,
    )


def test_a_back_dated_run_is_not_current_and_sends_nothing(tmp_path):
    receiver = Receiver()
    try:
        store = WebhookStore(home_store(tmp_path), LOCAL)
        first = run(tmp_path, {"A": 0.9}, SNAPSHOT)
        store.register(receiver.url, 0.5)
        # Three weeks back: B was open then (delivered since), and A was at 0.2.
        back = run(tmp_path, {"A": 0.2, "B": 0.95}, SNAPSHOT - pd.Timedelta(days=21))
        assert store.process_new_runs() == 0
        assert latest_run(home_store(tmp_path)).run_id == first.run_id
        assert list_runs(home_store(tmp_path), 1)[0].run_id == back.run_id  # recorded all the same
        # The next run at the snapshot is compared with the current one, not the back-dated.
        again = run(tmp_path, {"A": 0.95, "C": 0.8}, SNAPSHOT)
        assert latest_run(home_store(tmp_path)).run_id == again.run_id
        WebhookWorker(store).run_once()
    finally:
        receiver.close()
    sent = sorted((r.payload["order_id"], r.payload["event"]) for r in receiver.accepted)
    assert sent == [("C", "threshold_crossed")]  # A stayed above 0.5; B is not in this run


def test_a_run_of_another_dataset_becomes_current_whatever_its_dates(tmp_path):
    receiver = Receiver()
    try:
        store = WebhookStore(home_store(tmp_path), LOCAL)
        run(tmp_path, {"A": 0.9}, SNAPSHOT, source="/home/me/.otd-risk/demo/world")
        store.register(receiver.url, 0.5)
        history = run(tmp_path, {"S1": 0.7}, pd.Timestamp("2015-06-30", tz="UTC"), "scms.db")
        assert latest_run(home_store(tmp_path)).run_id == history.run_id
        WebhookWorker(store).run_once()
    finally:
        receiver.close()
    assert [r.payload["order_id"] for r in receiver.accepted] == ["S1"]


def test_one_folder_spelled_two_ways_is_one_dataset(tmp_path, monkeypatch):
    folder = tmp_path / "world"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    first = run(tmp_path, {"A": 0.9}, SNAPSHOT, source=str(folder))
    run(tmp_path, {"A": 0.1}, SNAPSHOT - pd.Timedelta(days=7), source="./world")
    assert latest_run(home_store(tmp_path)).run_id == first.run_id
    assert {r.data_source for r in list_runs(home_store(tmp_path))} == {str(folder.resolve())}
