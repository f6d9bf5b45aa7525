"""The simulated world's tables: deterministic, contract-valid, and shaped like a real export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.contract import STAGES
from data.simulate import Scenario, simulate
from data.validate import validate


def _assert_worlds_equal(a, b) -> None:
    for name, frame in a.full.tables().items():
        pd.testing.assert_frame_equal(frame, getattr(b.full, name))
    pd.testing.assert_frame_equal(a.ground_truth, b.ground_truth)
    assert a.snapshot == b.snapshot


def test_same_seed_same_world_other_seed_other_world():
    _assert_worlds_equal(simulate(800, seed=3), simulate(800, seed=3))
    other = simulate(800, seed=4)
    assert other.full.fingerprint() != simulate(800, seed=3).full.fingerprint()
    assert not other.full.orders["created_at"].equals(
        simulate(800, seed=3).full.orders["created_at"]
    )


def test_full_world_and_snapshot_pass_contract_validation(small_world):
    validate(small_world.full)
    validate(small_world.dataset())
    validate(small_world.dataset("2023-09-15T08:00:00Z"))


def test_canonical_dtypes(small_world):
    orders = small_world.full.orders
    assert orders["order_id"].map(type).eq(str).all()
    assert str(orders["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(orders["due_date"].dtype) == "datetime64[ns]"
    assert (orders["due_date"] == orders["due_date"].dt.normalize()).all()
    assert orders["quantity"].dtype == np.float64
    pos = small_world.full.purchase_orders
    assert pos["order_id"].dtype == object
    assert str(pos["promised_date"].dtype) == "datetime64[ns]"
    cap = small_world.full.capacity
    assert str(cap["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert cap["load_hours"].dtype == np.float64


def test_snapshot_is_last_creation_and_recent_orders_are_open(small_world):
    orders = small_world.full.orders
    assert small_world.snapshot == orders["created_at"].max()
    known = small_world.dataset().orders
    open_ = known["delivered_at"].isna() & known["cancelled_at"].isna()
    # Lead times are one to four weeks: the last weeks' orders are still open at the snapshot.
    assert 50 <= open_.sum() <= 400
    # ... while in the full world every order that was not cancelled is delivered.
    full_open = orders["delivered_at"].isna() & orders["cancelled_at"].isna()
    assert full_open.sum() == 0
    assert small_world.full.snapshot_time() > small_world.snapshot


def test_orders_arrive_more_on_weekdays_and_in_peak_season(small_world):
    created = small_world.full.orders["created_at"]
    weekday = created.dt.dayofweek
    per_weekday = (weekday < 5).sum() / 5
    per_weekend_day = (weekday >= 5).sum() / 2
    assert per_weekend_day < 0.35 * per_weekday
    month = created.dt.month
    # Default peak: mid October; trough half a year later.
    assert (month.isin([9, 10, 11])).sum() > 1.5 * (month.isin([3, 4, 5])).sum()
    span = created.max() - created.min()
    assert pd.Timedelta(days=700) < span < pd.Timedelta(days=731)


def test_stages_run_in_contract_order_back_to_back(small_world):
    stages = small_world.full.order_stages
    orders = small_world.full.orders
    done = stages[stages["order_id"].isin(orders.loc[orders["cancelled_at"].isna(), "order_id"])]
    rank = done["stage"].map({s: i for i, s in enumerate(STAGES)})
    done = done.assign(rank=rank).sort_values(["order_id", "rank"])
    same_order = done["order_id"].eq(done["order_id"].shift())
    # Each stage starts when the previous one completes; planned ends increase along the process.
    assert (done["started_at"][same_order] == done["completed_at"].shift()[same_order]).all()
    assert (done["planned_end"][same_order] > done["planned_end"].shift()[same_order]).all()
    assert (done["completed_at"] >= done["started_at"]).all()
    first = done.groupby("order_id").first()
    assert (first["stage"] == "confirmation").all()
    created = orders.set_index("order_id")["created_at"]
    assert (first["started_at"] == created.loc[first.index]).all()
    last = done.groupby("order_id").last()
    delivered = orders.set_index("order_id")["delivered_at"]
    assert (last["stage"] == "shipping").all()
    assert (last["completed_at"] == delivered.loc[last.index]).all()


def test_make_to_stock_orders_skip_procurement_and_production(small_world):
    stages = small_world.full.order_stages
    orders = small_world.full.orders
    produced = set(stages.loc[stages["stage"] == "production", "order_id"])
    procured = set(stages.loc[stages["stage"] == "procurement", "order_id"])
    live = set(orders.loc[orders["cancelled_at"].isna(), "order_id"])
    to_stock = live - produced
    assert 0.15 < len(to_stock) / len(live) < 0.5
    assert not (to_stock & procured)
    # Make-to-order with the material in stock: production without a purchase.
    assert len((live & produced) - procured) > 0.05 * len(live & produced)
    truth = small_world.ground_truth.set_index("order_id")
    assert truth.loc[sorted(to_stock), "delay_production"].isna().all()


def test_purchase_orders_linked_and_stock_replenishment(small_world):
    pos = small_world.full.purchase_orders
    stages = small_world.full.order_stages
    linked = pos[pos["order_id"].notna()]
    stock = pos[pos["order_id"].isna()]
    assert len(stock) > 0.2 * len(pos)
    assert len(linked) > 0.3 * len(pos)
    procurement = stages[stages["stage"] == "procurement"].set_index("order_id")
    # One purchase per procured order, placed when its procurement started.
    assert linked["order_id"].is_unique
    assert set(linked["order_id"]) == set(procurement.index)
    placed = procurement.loc[linked["order_id"], "started_at"].to_numpy()
    assert (linked["created_at"].to_numpy() == placed).all()
    assert pos["po_id"].is_unique
    assert (pos["quantity"] > 0).all()
    # Every supplier replenishes stock.
    assert stock["supplier_id"].nunique() == small_world.scenario.n_suppliers


def test_about_two_percent_cancelled_and_their_later_stages_absent(small_world):
    orders = small_world.full.orders
    stages = small_world.full.order_stages
    cancelled = orders[orders["cancelled_at"].notna()]
    assert 0.012 <= len(cancelled) / len(orders) <= 0.03
    assert cancelled["delivered_at"].isna().all()
    rows = stages.merge(cancelled[["order_id", "cancelled_at"]], on="order_id")
    assert (rows["started_at"] < rows["cancelled_at"]).all()
    assert (rows["completed_at"].isna() | (rows["completed_at"] <= rows["cancelled_at"])).all()
    # The stage running at cancellation never completes; no later stage exists.
    rows = rows.assign(rank=rows["stage"].map({s: i for i, s in enumerate(STAGES)}))
    rows = rows.sort_values(["order_id", "rank"])
    running = rows.groupby("order_id").tail(1)  # last() would skip the empty completed_at
    assert running["completed_at"].isna().all()
    assert rows["completed_at"].isna().sum() == len(running)
    assert not running["stage"].eq("shipping").all()
    truth = small_world.ground_truth.set_index("order_id").loc[cancelled["order_id"]]
    assert truth["cancelled"].all() and not truth["late"].any()


def test_capacity_records_ahead_and_revised(small_world):
    cap = small_world.full.capacity
    per_day = cap.groupby(["plant_id", "date"])
    assert (per_day.size() == 2).all()
    assert (cap["recorded_at"] < cap["date"].dt.tz_localize("UTC")).all()
    first = cap.sort_values("recorded_at").groupby(["plant_id", "date"]).first()
    last = cap.sort_values("recorded_at").groupby(["plant_id", "date"]).last()
    assert (first["load_hours"] <= last["load_hours"] + 1e-9).all()
    assert first["load_hours"].sum() < 0.9 * last["load_hours"].sum()
    closed = cap["date"].dt.dayofweek == 6
    assert (cap.loc[closed, "capacity_hours"] == 0).all()
    assert (cap.loc[closed, "load_hours"] == 0).all()
    assert (cap.loc[~closed, "capacity_hours"] > 0).all()


def test_scenario_rejects_unknown_ids_and_fields():
    with pytest.raises(ValueError, match="PL9.*use one of them"):
        Scenario.model_validate(
            {"capacity_crunches": [{"plant_id": "PL9", "start": "2024-01-01", "end": "2024-02-01"}]}
        )
    with pytest.raises(ValueError, match="S42"):
        Scenario.model_validate(
            {"supplier_degradations": [{"supplier_id": "S42", "date": "2024-01-01"}]}
        )
    with pytest.raises(ValueError, match="extra"):
        Scenario.model_validate({"seasonal_amplitud": 0.2})
