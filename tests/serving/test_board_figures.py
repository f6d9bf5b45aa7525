"""The OTD board's figures (``serving.board.build_board``) against a direct computation: plain
loops over the orders of a simulated world, as of a time before its snapshot, and a hand-made
world whose numbers are counted by hand. Also the workbook's formula neutralising."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from data.contract import STAGES
from data.dataset import Dataset
from data.load import load_dataset
from serving.board import build_board
from serving.owners import DEFAULT_STAGE_OWNERS, StageOwner, stage_owners

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world(small_world_dir) -> Dataset:
    return load_dataset(small_world_dir)


def expected_from_loops(ds: Dataset, as_of: pd.Timestamp, grace: int) -> dict:
    """The board's settled-order figures, order by order: the window, lateness by local dates,
    and each stage's addition (its end slip minus the previous stage's; a stage without a plan
    or a completion known at as_of breaks the chain for the stages after it)."""
    since = as_of - pd.Timedelta(days=365)
    stages_of = defaultdict(dict)
    for r in ds.order_stages.itertuples(index=False):
        stages_of[r.order_id][r.stage] = r
    weekly = defaultdict(lambda: [0, 0])  # (scope, key, week) -> [delivered, on_time]
    lost = dict.fromkeys(STAGES, 0.0)
    lost_orders = dict.fromkeys(STAGES, 0)
    delivered = on_time = 0
    late_days = 0.0
    for o in ds.orders.itertuples(index=False):
        got = o.delivered_at
        if pd.isna(got) or not (since < got <= as_of):
            continue
        if pd.notna(o.cancelled_at) and o.cancelled_at <= as_of:
            continue
        day = got.tz_convert(ds.tz).date()
        days_late = (day - o.due_date.date()).days
        late = days_late > grace
        week = day - timedelta(days=day.weekday())
        delivered += 1
        on_time += not late
        for key in (("all", ""), ("plant", o.plant_id)):
            weekly[(*key, week)][0] += 1
            weekly[(*key, week)][1] += not late
        if not late:
            continue
        late_days += days_late
        previous, broken = 0.0, False
        for stage in STAGES:
            row = stages_of[o.order_id].get(stage)
            if row is None:
                continue
            done = row.completed_at
            if pd.isna(row.planned_end) or pd.isna(done) or done > as_of:
                broken = True
            if broken:
                continue
            slip = (done - row.planned_end) / DAY
            added, previous = slip - previous, slip
            if added > 0:
                lost[stage] += added
                lost_orders[stage] += 1
    return {
        "delivered": delivered,
        "on_time": on_time,
        "late_days": late_days,
        "weekly": weekly,
        "lost": lost,
        "lost_orders": lost_orders,
    }


@pytest.mark.parametrize("grace", [0, 2])
def test_on_time_rate_and_lost_days_equal_a_loop_over_the_settled_orders(world, grace):
    as_of = world.snapshot_time() - pd.Timedelta(days=40)  # later deliveries must not count
    board = build_board(world, as_of, grace_days=grace)
    want = expected_from_loops(world, as_of, grace)

    assert board.delivered == want["delivered"] > 500
    assert board.on_time == want["on_time"]
    assert board.on_time_rate == pytest.approx(want["on_time"] / want["delivered"], abs=1e-12)
    assert board.late_days_total == pytest.approx(want["late_days"])

    got_weekly = {
        (r.scope, r.key, r.week.date()): [r.delivered, r.on_time]
        for r in board.weekly.itertuples()
        if r.scope != "customer"
    }
    assert got_weekly == dict(want["weekly"])
    for r in board.weekly.itertuples():
        assert r.on_time_rate == pytest.approx(r.on_time / r.delivered)

    by_stage = board.lost_by_stage.set_index("stage")
    assert set(by_stage.index) == set(STAGES)
    for stage in STAGES:
        assert by_stage.loc[stage, "days_lost"] == pytest.approx(want["lost"][stage], abs=1e-6)
        assert by_stage.loc[stage, "late_orders"] == want["lost_orders"][stage]
        assert by_stage.loc[stage, "owner"] == DEFAULT_STAGE_OWNERS[stage].en
    assert sum(want["lost"].values()) > 100  # the world's late orders do lose days


def test_customer_series_are_the_customers_with_most_deliveries(world):
    as_of = world.snapshot_time()
    board = build_board(world, as_of, top_customers=3)
    since = as_of - pd.Timedelta(days=365)
    orders = world.orders
    settled = orders[
        (orders["delivered_at"] > since)
        & (orders["delivered_at"] <= as_of)
        & orders["cancelled_at"].isna()
    ]
    counts = settled["customer_id"].value_counts()
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    series = board.weekly[board.weekly["scope"] == "customer"]
    assert set(series["key"]) == {c for c, _ in top}
    totals = series.groupby("key")["delivered"].sum().to_dict()
    assert totals == dict(top)


def test_open_at_risk_by_owner_and_stage_counts_the_run_rows(world):
    rng = np.random.default_rng(3)
    stages = ["procurement", "production", "order", "shipping"]
    rows = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(60)],
            "risk": rng.uniform(0, 1, 60),
            "top_stage": rng.choice(stages, 60),
            "past_due_days": rng.choice([0.0, 0.0, 3.0, np.nan], 60),
        }
    )
    board = build_board(world, world.snapshot_time(), run_rows=rows, min_risk=0.4)
    want: dict[str, list] = {}
    for r in rows.itertuples():
        if r.risk >= 0.4:
            entry = want.setdefault(r.top_stage, [0, 0, []])
            entry[0] += 1
            entry[1] += bool(r.past_due_days > 0)
            entry[2].append(r.risk)
    got = board.open_at_risk.set_index("stage")
    assert set(got.index) == set(want)
    for stage, (n, past_due, risks) in want.items():
        assert got.loc[stage, "orders"] == n
        assert got.loc[stage, "past_due"] == past_due
        assert got.loc[stage, "mean_risk"] == pytest.approx(np.mean(risks))
    assert got.loc["order", "owner"] == "order management"
    assert got.loc["procurement", "owner"] == "purchasing"
    assert list(board.open_at_risk["orders"]) == sorted(board.open_at_risk["orders"], reverse=True)


def test_suppliers_days_added_equal_a_loop_over_the_purchase_orders(world):
    as_of = world.snapshot_time() - pd.Timedelta(days=40)
    board = build_board(world, as_of)
    today = as_of.tz_convert(world.tz).date()
    first = (as_of - pd.Timedelta(days=365)).tz_convert(world.tz).date()
    want: dict[str, list] = {}
    for po in world.purchase_orders.itertuples():
        if po.created_at > as_of:
            continue
        promised = po.promised_date.date()
        got = po.received_at if pd.notna(po.received_at) and po.received_at <= as_of else None
        if not first < promised <= today or (got is None and not promised < today):
            continue
        day = today if got is None else got.tz_convert(world.tz).date()
        late = (day - promised).days
        entry = want.setdefault(po.supplier_id, [0, 0, 0.0])
        entry[0] += 1
        entry[1] += late > 0
        entry[2] += max(late, 0)
    got = board.suppliers.set_index("supplier_id")
    assert set(got.index) == set(want)
    for supplier, (n, late, days) in want.items():
        assert list(got.loc[supplier, ["purchase_orders", "late", "days_added"]]) == [
            n,
            late,
            days,
        ]
    assert list(board.suppliers["days_added"]) == sorted(board.suppliers["days_added"])[::-1]


def _hand_made() -> Dataset:
    """Three delivered orders and one open, one plant each side, times in UTC:
    A (PL1) due 2025-03-05, delivered 03-07 (2 days late): procurement 3 days behind plan, then
    production caught up 1 day (adds -1), shipping 2 more (adds +2);
    B (PL1) due 03-10, delivered 03-09 (on time);
    C (PL2) due 03-04, delivered 03-06 (late 2 days), its production completed 04-01, after the
    board's as_of: as of 03-20 production and the stages after it are not known;
    D (PL2) delivered 03-25, after as_of: not settled then."""
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    orders = pd.DataFrame(
        {
            "order_id": ["A", "B", "C", "D"],
            "customer_id": ["K1", "K1", "K2", "K2"],
            "product_id": ["P"] * 4,
            "plant_id": ["PL1", "PL1", "PL2", "PL2"],
            "quantity": [1.0] * 4,
            "created_at": [t("2025-02-01")] * 4,
            "due_date": pd.to_datetime(["2025-03-05", "2025-03-10", "2025-03-04", "2025-03-20"]),
            "delivered_at": [
                t("2025-03-07 10:00"),
                t("2025-03-09"),
                t("2025-03-06"),
                t("2025-03-25"),
            ],
            "cancelled_at": [pd.NaT] * 4,
        }
    )
    orders["cancelled_at"] = pd.to_datetime(orders["cancelled_at"], utc=True)
    stages = pd.DataFrame(
        [
            ("A", "procurement", t("2025-02-10"), t("2025-02-13")),
            ("A", "production", t("2025-02-20"), t("2025-02-22")),
            ("A", "shipping", t("2025-03-01"), t("2025-03-05")),
            ("C", "procurement", t("2025-02-10"), t("2025-02-11")),
            ("C", "production", t("2025-02-20"), t("2025-04-01")),
            ("C", "shipping", t("2025-03-01"), t("2025-03-05")),
        ],
        columns=["order_id", "stage", "planned_end", "completed_at"],
    )
    stages["started_at"] = pd.to_datetime(pd.Series([pd.NaT] * len(stages)), utc=True)
    return Dataset(orders=orders, order_stages=stages)


def test_a_hand_made_world_counted_by_hand():
    owners = stage_owners({"production": StageOwner(en="purchasing", zh="采购")})
    board = build_board(_hand_made(), "2025-03-20T00:00:00Z", owners=owners)
    assert (board.delivered, board.on_time, board.late_days_total) == (3, 1, 4.0)
    lost = board.lost_by_stage.set_index("stage")
    # A: procurement +3, production -1 (not a gain against the loss), shipping +2.
    # C: procurement +1; production completed after as_of: it and shipping are unknown.
    assert lost.loc["procurement", "days_lost"] == pytest.approx(4.0)
    assert lost.loc["procurement", "late_orders"] == 2
    assert lost.loc["production", "days_lost"] == 0
    assert lost.loc["shipping", "days_lost"] == pytest.approx(2.0)
    assert lost.loc["shipping", "late_orders"] == 1
    # Production's owner set to purchasing: its stages are summed under one owner.
    by_owner = board.lost_by_owner.set_index("owner")
    assert by_owner.loc["purchasing", "days_lost"] == pytest.approx(4.0)
    assert by_owner.loc["logistics", "days_lost"] == pytest.approx(2.0)
    plants = board.plants.set_index("plant_id")
    assert plants.loc["PL1"].tolist() == [2, 1, 0.5, 2.0]
    assert plants.loc["PL2"].tolist() == [1, 1, 0.0, 2.0]
    weeks = board.weekly[board.weekly["scope"] == "all"]
    # 03-06 (Thu) and 03-07 (Fri) in the week of Monday 03-03; 03-09 (Sun) too.
    assert weeks[["week", "delivered", "on_time"]].values.tolist() == [
        [pd.Timestamp("2025-03-03"), 3, 1]
    ]
    assert board.suppliers.empty and board.open_at_risk.empty


def test_the_workbook_neutralises_formulas_and_has_every_table():
    from openpyxl import load_workbook

    from serving.routers.board import SHEETS, board_out, board_workbook

    world = _hand_made()
    orders = world.orders.assign(plant_id=["=HYPERLINK(1)", "=HYPERLINK(1)", "PL2", "PL2"])
    built = build_board(
        Dataset(orders=orders, order_stages=world.order_stages), "2025-03-20T00:00:00Z"
    )
    body = board_out(built, None, DEFAULT_STAGE_OWNERS, "zh", 0, 0.5, 10)
    book = load_workbook(io.BytesIO(board_workbook(body)))
    assert book.sheetnames == list(SHEETS)
    plants = list(book["plants"].values)
    assert plants[0] == ("plant_id", "delivered", "late", "on_time_rate", "days_late")
    assert plants[1][0] == "'=HYPERLINK(1)"
    stages = {r[0]: r for r in list(book["lost_by_stage"].values)[1:]}
    assert stages["procurement"][1:3] == ("采购", "purchasing")
    assert book["summary"]["C2"].value == 3  # delivered


def test_a_dataset_with_only_orders_has_a_board_without_stages_or_suppliers(world):
    """order_stages and purchase_orders are optional: the on-time figures stand, no stage
    loses days and no supplier is listed; with nothing delivered in the window, no rate."""
    from dataclasses import replace

    only_orders = replace(world, order_stages=None, purchase_orders=None, capacity=None)
    as_of = world.snapshot_time()
    board = build_board(only_orders, as_of)
    full = build_board(world, as_of)
    assert (board.delivered, board.on_time) == (full.delivered, full.on_time)
    assert board.lost_by_stage["days_lost"].sum() == 0
    assert board.suppliers.empty
    before = build_board(world, world.orders["created_at"].min())
    assert before.delivered == 0 and before.on_time_rate is None and before.weekly.empty
