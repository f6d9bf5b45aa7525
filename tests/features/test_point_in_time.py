"""Point-in-time correctness: features as of T see nothing recorded after T."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.dataset import open_orders
from features.build import build_features


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    # Exact equality, NaN == NaN: the same facts must give the same numbers, bit for bit.
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=st.floats(min_value=0.02, max_value=0.98))
def test_full_dataset_and_cut_dataset_give_the_same_features(sim_world, fraction):
    full = sim_world.full
    start = full.orders["created_at"].min()
    end = full.orders["created_at"].max()  # after it the world only winds down
    t = start + (end - start) * fraction
    ids = open_orders(full.orders, t)["order_id"]
    assert len(ids) > 0
    from_full = build_features(full, ids, t)
    from_cut = build_features(full.cut(t), ids, t)
    assert len(from_full.columns) > 40
    assert_same_features(from_full, from_cut)


@pytest.fixture(scope="module")
def today_and_open(sim_world):
    full = sim_world.full
    t = full.orders["created_at"].quantile(0.6)
    ids = open_orders(full.orders, t)["order_id"]
    return full.cut(t), t, ids


def _planted(base, t, **tables):
    return replace(base, **tables)


def test_a_po_received_tomorrow_changes_nothing_today(today_and_open):
    known, t, ids = today_and_open
    pos = known.purchase_orders.copy()
    open_po = pos["received_at"].isna() & pos["order_id"].isin(ids)
    assert open_po.any()
    pos.loc[open_po, "received_at"] = t + pd.Timedelta(days=1)
    before = build_features(known, ids, t)
    after = build_features(_planted(known, t, purchase_orders=pos), ids, t)
    assert_same_features(before, after)
    # ...while the same receipt recorded an hour ago does change today's features.
    pos.loc[open_po, "received_at"] = t - pd.Timedelta(hours=1)
    changed = build_features(_planted(known, t, purchase_orders=pos), ids, t)
    assert not changed["open_po_count"].equals(before["open_po_count"])


def test_a_stage_completed_tomorrow_changes_nothing_today(today_and_open):
    known, t, ids = today_and_open
    stages = known.order_stages.copy()
    pending = stages["completed_at"].isna() & stages["order_id"].isin(ids)
    assert pending.any()
    stages.loc[pending, "completed_at"] = t + pd.Timedelta(days=1)
    stages.loc[pending, "started_at"] = stages.loc[pending, "started_at"].fillna(
        t + pd.Timedelta(hours=12)
    )
    before = build_features(known, ids, t)
    after = build_features(_planted(known, t, order_stages=stages), ids, t)
    assert_same_features(before, after)


def test_a_capacity_record_recorded_tomorrow_changes_nothing_today(today_and_open):
    known, t, ids = today_and_open
    cap = known.capacity
    day = t.tz_convert(known.tz).tz_localize(None).normalize()
    rows = cap[(cap["date"] >= day) & (cap["date"] < day + pd.Timedelta(days=14))]
    assert len(rows) > 0
    revised = rows.assign(
        load_hours=rows["load_hours"] * 3 + 50, recorded_at=t + pd.Timedelta(days=1)
    )
    planted = pd.concat([cap, revised], ignore_index=True)
    before = build_features(known, ids, t)
    after = build_features(_planted(known, t, capacity=planted), ids, t)
    assert_same_features(before, after)
    # Recorded an hour ago, the same revision raises today's load ratio.
    planted_past = pd.concat(
        [cap, revised.assign(recorded_at=t - pd.Timedelta(hours=1))], ignore_index=True
    )
    seen = build_features(_planted(known, t, capacity=planted_past), ids, t)
    assert (seen["plant_load_ratio_next_14d"] > before["plant_load_ratio_next_14d"]).all()


def test_an_order_delivered_tomorrow_changes_nothing_today(today_and_open):
    known, t, ids = today_and_open
    orders = known.orders.copy()
    orders.loc[orders["order_id"].isin(ids), "delivered_at"] = t + pd.Timedelta(days=1)
    before = build_features(known, ids, t)
    after = build_features(_planted(known, t, orders=orders), ids, t)
    assert_same_features(before, after)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=st.floats(min_value=0.05, max_value=0.95))
def test_history_pairs_are_point_in_time_too(sim_world, fraction):
    """Pairs chosen by training (their rates, recent rates, days late and counts) follow the
    same rule: the full history and the history cut at T agree exactly."""
    full = sim_world.full
    start, end = full.orders["created_at"].min(), full.orders["created_at"].max()
    t = start + (end - start) * fraction
    ids = open_orders(full.orders, t)["order_id"]
    pairs = [("plant_id", "priority"), ("customer_id", "product_family")]
    from_full = build_features(full, ids, t, rate_pairs=pairs)
    from_cut = build_features(full.cut(t), ids, t, rate_pairs=pairs)
    assert {"late_rate_plant_id__priority", "settled_customer_id__product_family"} <= set(
        from_full.columns
    )
    assert_same_features(from_full, from_cut)
