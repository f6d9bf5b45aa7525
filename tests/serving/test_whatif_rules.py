"""The what-if's rules on the data itself (``serving.whatif.apply_changes``), on the served
world: a date up to the as_of's is a fact that day, a later one a plan; the stages before a
finished one finish too; a later plan moves the stages after it; only the order's own rows
change."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from features.procurement_features import ASSURED_COLUMN
from serving.errors import ApiError
from serving.whatif import (
    DueDateMoved,
    PoReceived,
    ShipFaster,
    StageFinished,
    apply_changes,
    local_today,
    open_purchase_orders,
)


@pytest.fixture(scope="module")
def world(served):
    dataset = served.dataset
    t = dataset.snapshot_time()
    stages = dataset.order_stages
    for order_id in served.scores["order_id"]:
        pos = open_purchase_orders(dataset, order_id, t)
        mine = stages[stages["order_id"] == order_id].set_index("stage")
        if len(pos) == 1 and "procurement" in mine.index:
            if not mine.loc["procurement", "completed_at"] <= t:
                return dataset, t, order_id, pos.iloc[0], mine
    raise AssertionError("no open order waits on exactly one purchase order in procurement")


def own(dataset, order_id):
    stages = dataset.order_stages
    return stages[stages["order_id"] == order_id].set_index("stage")


def test_a_receipt_today_is_a_fact_and_finishes_procurement(world):
    dataset, t, order_id, po, _ = world
    today = local_today(dataset, t)
    changed = apply_changes(dataset, order_id, t, [PoReceived(po_id=po["po_id"], date=today)])
    row = changed.purchase_orders.set_index("po_id").loc[po["po_id"]]
    assert row["received_at"] <= t
    assert own(changed, order_id).loc["procurement", "completed_at"] == row["received_at"]
    assert len(open_purchase_orders(changed, order_id, t)) == 0
    # Nothing else moved.
    others = changed.purchase_orders["po_id"] != po["po_id"]
    pd.testing.assert_frame_equal(
        changed.purchase_orders[others], dataset.purchase_orders[others.to_numpy()]
    )
    assert dataset.purchase_orders.set_index("po_id").loc[po["po_id"], "received_at"] is pd.NaT


def test_a_later_receipt_is_assured_and_moves_the_plan(world):
    dataset, t, order_id, po, before = world
    planned = before.loc["procurement", "planned_end"]
    day = (planned.tz_convert(dataset.tz) + timedelta(days=10)).date()
    changed = apply_changes(dataset, order_id, t, [PoReceived(po_id=po["po_id"], date=day)])
    row = changed.purchase_orders.set_index("po_id").loc[po["po_id"]]
    assert pd.isna(row["received_at"])  # not arrived: the supplier's record does not count it
    assert bool(row[ASSURED_COLUMN]) and row["promised_date"] == pd.Timestamp(day)
    after = own(changed, order_id)
    moved = after.loc["procurement", "planned_end"] - planned
    assert after.loc["procurement", "planned_end"].tz_convert(dataset.tz).date() == day
    for stage in ("production", "shipping"):
        if stage in before.index and pd.notna(before.loc[stage, "planned_end"]):
            assert after.loc[stage, "planned_end"] == before.loc[stage, "planned_end"] + moved


def test_a_stage_finished_finishes_the_stages_before_it(world):
    dataset, t, order_id, _, before = world
    today = local_today(dataset, t)
    changed = apply_changes(dataset, order_id, t, [StageFinished(stage="production", date=today)])
    after = own(changed, order_id)
    for stage in ("confirmation", "planning", "procurement", "production"):
        if stage in after.index:
            assert after.loc[stage, "completed_at"] <= t, stage


def test_ship_faster_and_due_date_change_only_the_plan(world, served):
    dataset, t, _, _, _ = world
    new_due = (t + pd.Timedelta(days=90)).tz_convert(dataset.tz).tz_localize(None).normalize()
    changes = [ShipFaster(days=1), DueDateMoved(date=new_due.date())]
    for order_id in served.scores["order_id"]:
        try:
            changed = apply_changes(dataset, order_id, t, changes)
        except ApiError:  # shipping already due: cannot be faster
            continue
        before, after = own(dataset, order_id), own(changed, order_id)
        faster = before.loc["shipping", "planned_end"] - after.loc["shipping", "planned_end"]
        assert faster == pd.Timedelta(days=1)
        assert changed.orders.set_index("order_id").loc[order_id, "due_date"] == new_due
        assert dataset.orders.set_index("order_id").loc[order_id, "due_date"] != new_due
        return
    raise AssertionError("no open order has a shipping plan a day could come off")


def test_a_shipping_plan_cannot_end_before_now(world):
    dataset, t, order_id, _, _ = world
    with pytest.raises(ApiError) as err:
        apply_changes(dataset, order_id, t, [ShipFaster(days=60)])
    assert err.value.status == 422 and "at most" in err.value.message
