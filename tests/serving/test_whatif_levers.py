"""What would help, on a world with a planted cause (supplier S03 degrades from 2024-01-01): a
real model trained on it, served by the app, asked for its levers order by order.

The orders in question are the at-risk ones (risk >= 0.5) whose top stage is procurement and
that wait on an open purchase order of the degraded supplier. Expediting that purchase order to
its promised date must lower the risk of at least 80% of those not yet past due, and the lever
the product suggests for them must mostly be that expedite. A past-due order's risk is 1
whatever is done, and when its purchase order is overdue the forecast already has it arriving
now (a stage running late cannot end before now), so receiving it today cannot shorten that
forecast either (measured: 0.0 days on this world's one such order); for those the expedite must
only not make things worse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from data.simulate import simulate, write_world
from serving.whatif import open_purchase_orders

AT_RISK = 0.5


@dataclass(frozen=True)
class PlantedServed:
    client: TestClient
    headers: dict
    scores: object
    dataset: object
    degraded: str


@pytest.fixture(scope="module")
def planted_served(planted_scenario, tmp_path_factory):
    from data.load import load_dataset
    from otd_risk.settings import Settings
    from serving.app import ServeOptions, create_app
    from serving.columns import REASON_LANGS
    from serving.keys import create_key
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    root = tmp_path_factory.mktemp("planted_levers")
    world_dir = write_world(simulate(6000, seed=11, scenario=planted_scenario), root / "world")
    home = root / "home"
    settings = Settings(
        home=home, data=str(world_dir), mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}"
    )
    dataset = load_dataset(world_dir, tz=settings.timezone)
    train_model(dataset, settings=settings, force=True)
    loaded = load_champion(settings)
    scores = score_open_orders(dataset, None, loaded, reason_langs=REASON_LANGS)
    store = open_store(settings.serving_store_url)
    record_scoring_run(store, scores, model=loaded, as_of=dataset.snapshot_time(), dataset=dataset)
    key = create_key(store, "reader", "levers").key
    app = create_app(settings, ServeOptions(reload_seconds=0))
    with TestClient(app) as client:
        degraded = planted_scenario.supplier_degradations[0].supplier_id
        headers = {"Authorization": f"Bearer {key}"}
        yield PlantedServed(client, headers, scores, dataset, degraded)


def waiting_on_the_degraded_supplier(served: PlantedServed) -> list[tuple[str, bool]]:
    """(order_id, past due) of the at-risk orders whose top stage is procurement and that have
    an open purchase order of the degraded supplier."""
    t = served.dataset.snapshot_time()
    rows = served.scores
    chosen = rows[(rows["risk"] >= AT_RISK) & (rows["top_stage"] == "procurement")]
    out = []
    for order_id, past_due in zip(chosen["order_id"], chosen["past_due_days"] > 0, strict=True):
        pos = open_purchase_orders(served.dataset, order_id, t)
        if (pos["supplier_id"] == served.degraded).any():
            out.append((order_id, bool(past_due)))
    return out


def test_expediting_the_degraded_suppliers_po_lowers_the_risk(planted_served):
    orders = waiting_on_the_degraded_supplier(planted_served)
    not_due = [o for o, past_due in orders if not past_due]
    assert len(not_due) >= 8, f"too few orders to judge: {orders}"
    lowered, suggested, past_due_no_worse = 0, 0, []
    for order_id, past_due in orders:
        body = planted_served.client.get(
            f"/v1/orders/{order_id}/levers", headers=planted_served.headers
        ).json()
        expedite = next(lv for lv in body["levers"] if lv["lever"] == "expedite_po")
        if past_due:
            past_due_no_worse.append(expedite["days_late_change"] <= 1e-9)
            continue
        lowered += expedite["risk_change"] < 0
        suggested += body["best"] is not None and body["best"]["lever"] == "expedite_po"
    assert lowered >= 0.8 * len(not_due), (lowered, len(not_due))
    assert suggested > 0.5 * len(not_due), (suggested, len(not_due))
    assert all(past_due_no_worse), past_due_no_worse


def test_the_suggestion_reads_as_the_issue_asks(planted_served):
    waiting = waiting_on_the_degraded_supplier(planted_served)
    order_id = next(o for o, past_due in waiting if not past_due)
    body = planted_served.client.get(
        f"/v1/orders/{order_id}/levers", headers=planted_served.headers
    ).json()
    expedite = next(lv for lv in body["levers"] if lv["lever"] == "expedite_po")
    po = expedite["changes"][0]["po_id"]
    assert expedite["description"].startswith(
        f"expedite purchase order {po} (supplier {planted_served.degraded})"
    )
    before, after = body["current"]["risk"], expedite["after"]["risk"]
    assert expedite["summary"].endswith(f": risk {before:.2f} → {after:.2f}")
