"""Each mechanism of the simulator does what a planner would expect, and the ground truth names
the mechanism that really produced the delay."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import order_outcomes
from data.simulate import Scenario, simulate


def _production(world) -> pd.DataFrame:
    """Production rows with plant, duration (days) and the order's ground truth."""
    stages = world.full.order_stages
    prod = stages[(stages["stage"] == "production") & stages["completed_at"].notna()]
    prod = prod.merge(world.full.orders[["order_id", "plant_id"]], on="order_id")
    prod = prod.merge(world.ground_truth, on="order_id")
    return prod.assign(days=(prod["completed_at"] - prod["started_at"]).dt.total_seconds() / 86400)


def _in_window(ts: pd.Series, crunch) -> pd.Series:
    start = pd.Timestamp(crunch.start, tz="UTC")
    end = pd.Timestamp(crunch.end, tz="UTC") + pd.Timedelta(days=1)
    return (ts >= start) & (ts < end)


def test_default_late_rate_in_range(small_world):
    truth = small_world.ground_truth
    delivered = truth["delivered_at"].notna()
    rate = truth.loc[delivered, "late"].mean()
    assert 0.15 <= rate <= 0.35
    # Rush orders have little slack: they are late far more often.
    orders = small_world.full.orders.set_index("order_id")
    rush = orders.loc[truth["order_id"], "priority"].eq("rush").to_numpy()
    assert (
        truth.loc[delivered & rush, "late"].mean()
        > 1.3 * truth.loc[delivered & ~rush, "late"].mean()
    )


def test_ground_truth_agrees_with_the_tables(small_world):
    truth = small_world.ground_truth
    outcome = order_outcomes(small_world.full.orders, "UTC")
    delivered = outcome["late"].notna().to_numpy()
    assert (
        truth["late"].to_numpy()[delivered] == outcome["late"].to_numpy()[delivered].astype(bool)
    ).all()
    assert truth["days_late"].equals(outcome["days_late"])
    late = truth[truth["late"]]
    delays = late[[f"delay_{s}" for s in STAGES]].fillna(-np.inf).to_numpy()
    assert (late["cause_stage"].to_numpy() == np.array(STAGES)[delays.argmax(axis=1)]).all()
    assert truth.loc[~truth["late"], "cause_stage"].isna().all()
    # A late order's plan slipped by more than its slack: the stages' slips add up to lateness.
    slip = late[[f"delay_{s}" for s in STAGES]].sum(axis=1)
    assert (slip > late["days_late"] - 1).all()


def test_supplier_degradation_lowers_its_on_time_rate_after_its_date(
    planted_world, planted_scenario
):
    deg = planted_scenario.supplier_degradations[0]
    pos = planted_world.full.purchase_orders
    on_time = pos["received_at"].dt.tz_localize(None).dt.normalize() <= pos["promised_date"]
    after = pos["promised_date"] >= pd.Timestamp(deg.date)
    rates = pd.DataFrame({"s": pos["supplier_id"], "after": after, "on_time": on_time})
    rates = rates.groupby(["s", "after"])["on_time"].mean().unstack()
    drop = rates[False] - rates[True]
    assert rates.loc[deg.supplier_id, False] > 0.7
    assert rates.loc[deg.supplier_id, True] < 0.5
    assert drop[deg.supplier_id] > 0.3
    others = drop.drop(deg.supplier_id)
    assert others.abs().max() < 0.1


def test_degraded_supplier_makes_its_orders_late_through_procurement(
    planted_world, planted_scenario
):
    deg = planted_scenario.supplier_degradations[0]
    pos = planted_world.full.purchase_orders
    hit = pos[
        (pos["supplier_id"] == deg.supplier_id)
        & pos["order_id"].notna()
        & (pos["promised_date"] >= pd.Timestamp(deg.date))
    ]
    truth = planted_world.ground_truth.set_index("order_id").loc[hit["order_id"]]
    late = truth[truth["late"]]
    assert late["late"].size > 20
    assert (late["cause_stage"] == "procurement").mean() > 0.5
    assert (late["cause_mechanism"] == "supplier_degradation").mean() > 0.5


def test_capacity_crunch_lengthens_production_at_that_plant_in_that_window(
    planted_world, planted_scenario
):
    crunch = planted_scenario.capacity_crunches[0]
    prod = _production(planted_world)
    window = _in_window(prod["started_at"], crunch)
    here = prod["plant_id"] == crunch.plant_id
    days = prod.groupby([here, window])["days"].mean()
    assert days[(True, True)] > 1.5 * days[(True, False)]
    assert days[(True, True)] > 1.5 * days[(False, True)]
    # Other plants in the same window are not slowed.
    assert days[(False, True)] < 1.2 * days[(False, False)]


def test_capacity_table_shows_the_crunch(planted_world, planted_scenario):
    crunch = planted_scenario.capacity_crunches[0]
    cap = planted_world.full.capacity.sort_values("recorded_at")
    plan = cap.groupby(["plant_id", "date"]).tail(1)
    plan = plan[plan["capacity_hours"] > 0]
    window = plan["date"].between(pd.Timestamp(crunch.start), pd.Timestamp(crunch.end))
    here = plan["plant_id"] == crunch.plant_id
    load = (plan["load_hours"] / plan["capacity_hours"]).groupby([here, window]).mean()
    assert load[(True, True)] > 1.4
    assert load[(True, False)] < 1.0
    assert load[(False, True)] < 1.1
    normal = plan.loc[here & ~window, "capacity_hours"].median()
    reduced = plan.loc[here & window, "capacity_hours"].median()
    assert reduced == np.round(normal * crunch.capacity_factor, 2)


def test_ground_truth_blames_production_at_the_crunched_plant(planted_world, planted_scenario):
    crunch = planted_scenario.capacity_crunches[0]
    prod = _production(planted_world)
    hit = prod[(prod["plant_id"] == crunch.plant_id) & _in_window(prod["started_at"], crunch)]
    late = hit[hit["late"]]
    assert len(late) >= 20
    assert hit["late"].mean() > 0.5
    assert (late["cause_stage"] == "production").mean() > 0.7
    assert (late["cause_mechanism"] == "capacity_crunch").mean() > 0.6


def test_confirmation_slows_when_many_orders_arrive(small_world):
    stages = small_world.full.order_stages
    conf = stages[(stages["stage"] == "confirmation") & stages["completed_at"].notna()]
    days = (conf["completed_at"] - conf["started_at"]).dt.total_seconds() / 86400
    month = conf["started_at"].dt.month
    # Intake peaks in October and is lowest in April.
    assert days[month == 10].mean() > 1.8 * days[month == 4].mean()


def test_rework_depends_on_product_family():
    # One family that never fails inspection, one that fails half the time: a quality slip of
    # over a day is a rework.
    sc = Scenario(family_rework_prob={"solid": 0.0, "fragile": 0.5}, noise_sigma=0.1)
    world = simulate(1500, seed=5, scenario=sc)
    reworked = (
        (world.ground_truth["delay_quality"] > 1).groupby(world.full.orders["product_id"]).mean()
    )
    never = (reworked == 0).mean()
    often = reworked.between(0.25, 0.75).mean()
    # Products split between the two families; every product is in one of them.
    assert never > 0.2 and often > 0.2
    assert never + often > 0.9


def test_shipping_delays_by_region_and_season(small_world):
    stages = small_world.full.order_stages
    ship = stages[(stages["stage"] == "shipping") & stages["completed_at"].notna()]
    ship = ship.merge(small_world.ground_truth[["order_id", "delay_shipping"]], on="order_id")
    month = ship["started_at"].dt.month
    winter = month.isin([1, 2])
    summer = month.isin([6, 7, 8])
    assert (
        ship.loc[winter, "delay_shipping"].mean() > ship.loc[summer, "delay_shipping"].mean() + 0.3
    )
