"""Training sets: labels, censoring, exclusions, and no example after its outcome was known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.dataset import order_outcomes
from features.training_set import build_training_set


@pytest.fixture(scope="module")
def cut_and_set(sim_world):
    full = sim_world.full
    cutoff = full.orders["created_at"].quantile(0.8)
    return full.cut(cutoff), cutoff, build_training_set(full, cutoff, every_days=7)


def test_labels_match_the_outcomes_of_delivered_orders(cut_and_set):
    cut, _, ts = cut_and_set
    outcomes = order_outcomes(cut.orders, cut.tz).set_index("order_id")
    delivered = ts[ts["censored"] == 0].drop_duplicates("order_id").set_index("order_id")
    expected = outcomes.loc[delivered.index]
    assert (delivered["late"] == expected["late"].astype(int)).all()
    assert (delivered["days_late"] == expected["days_late"]).all()
    assert set(ts["late"].unique()) == {0, 1}


def test_known_late_undelivered_orders_are_included(cut_and_set):
    cut, cutoff, ts = cut_and_set
    censored = ts[ts["censored"] == 1].drop_duplicates("order_id")
    assert len(censored) == ts.attrs["counts"]["known_late_undelivered"] > 0
    assert (censored["late"] == 1).all()
    rows = cut.orders.set_index("order_id").loc[censored["order_id"]]
    assert rows["delivered_at"].isna().all()
    assert (rows["due_date"] < cutoff.tz_convert(cut.tz).tz_localize(None).normalize()).all()


def test_cancelled_orders_are_excluded_and_counted(cut_and_set):
    cut, cutoff, ts = cut_and_set
    cancelled = cut.orders.loc[cut.orders["cancelled_at"] <= cutoff, "order_id"]
    assert len(cancelled) > 0
    assert ts.attrs["counts"]["cancelled_excluded"] == len(cancelled)
    assert not ts["order_id"].isin(cancelled).any()
    c = ts.attrs["counts"]
    assert (
        c["labelled_orders"]
        + c["cancelled_excluded"]
        + c["delivered_not_yet_due_excluded"]
        + c["open_outcome_unknown_excluded"]
        == c["orders_in_cut"]
        == len(cut.orders)
    )


def test_orders_delivered_early_but_not_yet_due_are_left_out_and_counted(cut_and_set):
    """Their late siblings are not known yet: keeping the early ones tilts labels to on time."""
    cut, cutoff, ts = cut_and_set
    orders = cut.orders
    today = cutoff.tz_convert(cut.tz).tz_localize(None).normalize()
    early = orders[(orders["delivered_at"] <= cutoff) & (orders["due_date"] >= today)]
    assert len(early) > 0
    assert ts.attrs["counts"]["delivered_not_yet_due_excluded"] == len(early)
    assert not ts["order_id"].isin(early["order_id"]).any()
    # Every order in the set is past its due date at the cut-off, late or not.
    due = orders.set_index("order_id").loc[ts["order_id"].unique(), "due_date"]
    assert (due < today).all()
    settled = (due + pd.Timedelta(days=1)).dt.tz_localize(cut.tz)
    known = ts.drop_duplicates("order_id").set_index("order_id")["outcome_known_at"]
    assert (known.loc[settled.index] == settled).all()


def test_no_example_is_seen_once_its_outcome_was_known(cut_and_set):
    _, cutoff, ts = cut_and_set
    assert (ts["as_of"] < ts["outcome_known_at"]).all()
    assert (ts["outcome_known_at"] <= cutoff).all()
    # A late order is known late once its due date is over: no example past due.
    assert (ts["days_to_due"] > 0).all()
    assert ts["days_to_due"].equals(ts["slack_days"])


def test_each_order_is_seen_at_creation_then_every_k_days(cut_and_set):
    cut, _, ts = cut_and_set
    created = cut.orders.set_index("order_id")["created_at"]
    first = ts.groupby("order_id")["as_of"].min()
    assert (first == created.loc[first.index]).all()
    steps = ts.sort_values(["order_id", "as_of"]).groupby("order_id")["as_of"].diff().dropna()
    assert (steps == pd.Timedelta(days=7)).all()
    assert ts.groupby("order_id").size().max() > 1


def test_features_use_only_the_cut_dataset(sim_world, cut_and_set):
    _, cutoff, ts = cut_and_set
    later = sim_world.full.orders["created_at"].quantile(0.9)
    from_later_data = build_training_set(sim_world.full.cut(later), cutoff, every_days=7)
    pd.testing.assert_frame_equal(ts, from_later_data, check_exact=True)
    assert np.isfinite(ts["slack_days"]).all()


@pytest.fixture(scope="module")
def forecast_set(sim_world, cut_and_set):
    from features.training_set import build_forecast_set

    full = sim_world.full
    _, cutoff, ts = cut_and_set
    return build_forecast_set(full, cutoff, ts, every_days=7)


def test_forecast_examples_follow_late_orders_after_their_due_date_until_delivery(
    cut_and_set, forecast_set
):
    """Past-due open orders must be in the forecast's training data: a late order is seen
    weekly after its due date too, on the same grid, while still undelivered."""
    from features.timeline import DAY_NS

    cut, cutoff, ts = cut_and_set
    fs = forecast_set
    assert fs.attrs["counts"]["forecast_examples_past_due"] > 0
    past_due = fs[fs["slack_days"] < 0]
    assert len(past_due) > 20 and (past_due["late"] == 1).all()
    # Every example is before its order's delivery, and only delivered orders have one.
    assert (fs["as_of"] < fs["delivered_at"]).all()
    assert fs["delivered_at"].notna().all() and (fs["delivered_at"] <= cutoff).all()
    # On the weekly grid from creation, with no gap: k = 0, 1, 2, ... for each order.
    created = cut.orders.set_index("order_id")["created_at"]
    steps = (
        fs["as_of"].reset_index(drop=True) - created.loc[fs["order_id"]].reset_index(drop=True)
    ) / pd.Timedelta(days=7)
    assert np.allclose(steps, np.round(steps))
    counts = (
        fs.reset_index(drop=True)
        .assign(k=np.round(steps.to_numpy()))
        .groupby("order_id")["k"]
        .agg(["max", "size"])
    )
    assert (counts["max"] + 1 == counts["size"]).all()
    # The target: delivery minus the end of the due date, in days, the same for every example.
    due_end = (cut.orders.set_index("order_id")["due_date"] + pd.Timedelta(days=1)).dt.tz_localize(
        "UTC"
    )
    expected = (
        fs["delivered_at"].reset_index(drop=True)
        - due_end.loc[fs["order_id"]].reset_index(drop=True)
    ) / pd.Timedelta(days=1)
    np.testing.assert_allclose(fs["target_days_late"], expected.to_numpy())
    late_days = fs.loc[fs["target_days_late"] > 0, "target_days_late"]
    assert late_days.max() * DAY_NS > 0  # late ones present


def test_forecast_stage_targets_add_up_to_days_late(forecast_set):
    """What each stage added telescopes: the plan's offset + the slip so far + what the stages
    still ahead add + the wait to delivery = days late, for every example, to 1e-9."""
    from data.contract import STAGES
    from features.stage_slips import observed_state

    fs = forecast_set
    state = observed_state(fs)
    added = np.column_stack([fs[f"target_added_{s}"].to_numpy() for s in STAGES])
    ahead = np.where(state["pending"], added, 0.0).sum(axis=1)
    rebuilt = state["plan_offset"] + state["slip_so_far"] + ahead + fs["target_tail"].fillna(0)
    ok = state["known"] & np.isfinite(rebuilt)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(rebuilt[ok], fs["target_days_late"].to_numpy()[ok], atol=1e-9)


def test_forecast_labels_are_point_in_time(sim_world, cut_and_set, forecast_set):
    """The forecast set built at the cut-off from the full history equals the one built from
    the history cut there: no target sees what happened after the cut-off."""
    from features.training_set import build_forecast_set

    full = sim_world.full
    _, cutoff, _ = cut_and_set
    from_cut = build_forecast_set(
        full.cut(cutoff), cutoff, build_training_set(full.cut(cutoff), cutoff), every_days=7
    )
    pd.testing.assert_frame_equal(
        forecast_set.reset_index(drop=True), from_cut.reset_index(drop=True), check_exact=True
    )
