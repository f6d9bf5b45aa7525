"""The OTD board (看板) for managers' reviews: figures over a year of settled orders and the open
at-risk orders of a scoring run, computed from frames with an explicit ``as_of``.

``build_board(dataset, as_of, run_rows=...) -> Board`` is pure: it reads the dataset as it was
known at ``as_of`` (``Dataset.cut``), never the clock, and returns plain tables:

- ``weekly``: the on-time delivery rate per week (Monday to Sunday, by the local delivery date)
  of the orders delivered in the window ``(as_of - window_days, as_of]`` and not cancelled:
  overall, per plant, and per customer for the ``top_customers`` customers with the most
  deliveries (the contract has no customer group column, so a customer is the group); the
  window's first and last weeks may be partial. On time
  means what it means everywhere here: delivered no later than the due date plus the grace days
  (``data.dataset.order_outcomes``).
- ``lost_by_stage`` / ``lost_by_owner``: where the late ones among those orders lost their days:
  per stage, the days it added beyond its plan (``features.stage_slips.final_additions``, the
  same slips the forecast learns), counted where a stage added days (a stage that caught up is
  not a gain to set against another's loss), and the owner of each stage.
- ``open_at_risk``: the run's open orders with risk at least ``min_risk`` by owner and top stage.
- ``suppliers``: per supplier, the days its purchase orders came in after their promised date
  (promised in the window; one still open past its promise counts the days so far, as the
  contract's point-in-time rule says of supplier punctuality).
- ``plants``: per plant, the settled orders, the late ones and the days they were late.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import Dataset, local_date, order_outcomes, to_utc_timestamp
from features.stage_slips import final_additions
from serving.owners import DEFAULT_STAGE_OWNERS, StageOwner, owner_of

WINDOW_DAYS = 365
"""The reviews look back a year."""
TOP_CUSTOMERS = 10
"""Customers with a weekly series of their own: the ones with the most deliveries."""
DEFAULT_MIN_RISK = 0.5
"""An open order is at risk from this risk on, unless the caller says otherwise."""

WEEKLY_COLUMNS = ("scope", "key", "week", "delivered", "on_time", "on_time_rate")
LOST_STAGE_COLUMNS = ("stage", "owner", "days_lost", "late_orders")
LOST_OWNER_COLUMNS = ("owner", "days_lost", "late_orders")
OPEN_COLUMNS = ("owner", "stage", "orders", "past_due", "mean_risk")
SUPPLIER_COLUMNS = ("supplier_id", "purchase_orders", "late", "days_added")
PLANT_COLUMNS = ("plant_id", "delivered", "late", "on_time_rate", "days_late")


@dataclass(frozen=True)
class Board:
    """The board's tables (frames with the ``*_COLUMNS`` above) and the window they cover."""

    as_of: pd.Timestamp
    since: pd.Timestamp
    """Start of the window (exclusive): ``as_of`` minus ``window_days``."""
    delivered: int
    """Settled orders in the window."""
    on_time: int
    late_days_total: float
    """Days late summed over the late settled orders (delivery date minus due date)."""
    weekly: pd.DataFrame
    lost_by_stage: pd.DataFrame
    lost_by_owner: pd.DataFrame
    open_at_risk: pd.DataFrame
    suppliers: pd.DataFrame
    plants: pd.DataFrame

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.delivered if self.delivered else None


def build_board(
    dataset: Dataset,
    as_of: object,
    *,
    run_rows: pd.DataFrame | None = None,
    owners: Mapping[str, StageOwner] = DEFAULT_STAGE_OWNERS,
    grace_days: int = 0,
    min_risk: float = DEFAULT_MIN_RISK,
    window_days: int = WINDOW_DAYS,
    top_customers: int = TOP_CUSTOMERS,
) -> Board:
    """The board as of ``as_of`` (a UTC timestamp, or naive in the dataset's zone). ``run_rows``:
    a scoring run's ranked rows (``serving.runs.load_run_rows``), for the open at-risk orders;
    ``owners``: the stage owners (``serving.owners.stage_owners``)."""
    t = to_utc_timestamp(as_of, dataset.tz)
    since = t - pd.Timedelta(days=window_days)
    known = dataset.cut(t)
    settled = _settled(known, since, t, grace_days)
    late = settled["late"].to_numpy(dtype=bool)
    lost = _lost_by_stage(known, settled.index.to_numpy()[late], owners)
    return Board(
        as_of=t,
        since=since,
        delivered=len(settled),
        on_time=int((~late).sum()),
        late_days_total=float(settled.loc[late, "days_late"].sum()),
        weekly=_weekly(settled, top_customers),
        lost_by_stage=lost,
        lost_by_owner=_lost_by_owner(lost),
        open_at_risk=_open_at_risk(run_rows, owners, min_risk),
        suppliers=_suppliers(known, since, t),
        plants=_plants(settled),
    )


def _settled(known: Dataset, since: pd.Timestamp, t: pd.Timestamp, grace: int) -> pd.DataFrame:
    """The orders delivered in ``(since, t]`` and not cancelled by ``t``, indexed by their row in
    ``known.orders``, with their local delivery week and outcome."""
    orders = known.orders
    if "delivered_at" not in orders.columns:
        return pd.DataFrame(columns=["plant_id", "customer_id", "week", "days_late", "late"])
    mask = (orders["delivered_at"] > since) & (orders["delivered_at"] <= t)
    if "cancelled_at" in orders.columns:
        mask &= orders["cancelled_at"].isna()
    chosen = orders[mask.to_numpy()]
    outcome = order_outcomes(chosen, known.tz, grace)
    day = local_date(chosen["delivered_at"], known.tz)
    return pd.DataFrame(
        {
            "plant_id": chosen["plant_id"],
            "customer_id": chosen["customer_id"],
            "week": day - pd.to_timedelta(day.dt.weekday, unit="D"),
            "days_late": outcome["days_late"].astype(float),
            "late": outcome["late"].astype(bool),
        },
        index=chosen.index,
    )


def _weekly(settled: pd.DataFrame, top_customers: int) -> pd.DataFrame:
    """On-time rate per week: overall, per plant, per top customer (by deliveries)."""
    on_time = ~settled["late"]
    frames = [_rate_by_week(settled.assign(key=""), on_time, "all")]
    frames.append(_rate_by_week(settled.assign(key=settled["plant_id"]), on_time, "plant"))
    counts = settled["customer_id"].value_counts(sort=False)
    # The most deliveries first, ties by id: the same customers whatever the rows' order.
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(top_customers, 0)]
    chosen = settled["customer_id"].isin([c for c, _ in top])
    frames.append(
        _rate_by_week(
            settled[chosen].assign(key=settled.loc[chosen, "customer_id"]),
            on_time[chosen],
            "customer",
        )
    )
    return pd.concat(frames, ignore_index=True).reindex(columns=list(WEEKLY_COLUMNS))


def _rate_by_week(rows: pd.DataFrame, on_time: pd.Series, scope: str) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame(columns=list(WEEKLY_COLUMNS))
    grouped = rows.assign(on_time=on_time.astype(int)).groupby(["key", "week"], sort=True)
    out = grouped["on_time"].agg(delivered="size", on_time="sum").reset_index()
    out["on_time_rate"] = out["on_time"] / out["delivered"]
    out.insert(0, "scope", scope)
    return out


def _lost_by_stage(
    known: Dataset, late_rows: np.ndarray, owners: Mapping[str, StageOwner]
) -> pd.DataFrame:
    """Per stage: days the late orders (rows of ``known.orders``) lost there, and how many lost
    some there."""
    added = final_additions(known)["added"][late_rows]
    lost = np.where(np.nan_to_num(added) > 0, added, 0.0)
    out = pd.DataFrame(
        {
            "stage": list(STAGES),
            "owner": [_owner_key(s, owners) for s in STAGES],
            "days_lost": lost.sum(axis=0),
            "late_orders": (lost > 0).sum(axis=0).astype(int),
        }
    )
    return out.sort_values("days_lost", ascending=False, kind="stable").reset_index(drop=True)


def _lost_by_owner(lost: pd.DataFrame) -> pd.DataFrame:
    """Stages summed per owner (several stages may share one); ``late_orders`` counts each order
    once per stage it lost days in."""
    out = lost.groupby("owner", sort=False)[["days_lost", "late_orders"]].sum().reset_index()
    return out.sort_values("days_lost", ascending=False, kind="stable").reset_index(drop=True)


def _open_at_risk(
    rows: pd.DataFrame | None, owners: Mapping[str, StageOwner], min_risk: float
) -> pd.DataFrame:
    if rows is None or rows.empty:
        return pd.DataFrame(columns=list(OPEN_COLUMNS))
    at_risk = rows[rows["risk"].to_numpy(dtype=float) >= min_risk]
    past_due = at_risk["past_due_days"].to_numpy(dtype=float, na_value=np.nan) > 0
    grouped = at_risk.assign(past_due=past_due).groupby("top_stage", sort=False)
    out = grouped.agg(
        orders=("risk", "size"), past_due=("past_due", "sum"), mean_risk=("risk", "mean")
    ).reset_index(names="stage")
    out.insert(0, "owner", [_owner_key(s, owners) for s in out["stage"]])
    out["past_due"] = out["past_due"].astype(int)
    return (
        out.reindex(columns=list(OPEN_COLUMNS))
        .sort_values(["orders", "stage"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )


def _suppliers(known: Dataset, since: pd.Timestamp, t: pd.Timestamp) -> pd.DataFrame:
    """Per supplier: purchase orders promised in the window whose outcome is known at ``t``
    (received, or still open past the promise), the late ones and the days they added."""
    if not known.has("purchase_orders") or known.purchase_orders is None:
        return pd.DataFrame(columns=list(SUPPLIER_COLUMNS))
    pos = known.purchase_orders
    today = pd.Timestamp(t.tz_convert(known.tz).date())
    first = pd.Timestamp(since.tz_convert(known.tz).date())
    promised = pos["promised_date"]
    received = (
        local_date(pos["received_at"], known.tz)
        if "received_at" in pos.columns
        else pd.Series(pd.NaT, index=pos.index, dtype="datetime64[ns]")
    )
    outcome_known = received.notna() | (promised < today)
    mask = (promised > first) & (promised <= today) & outcome_known
    days = ((received.fillna(today) - promised).dt.days).where(mask)
    frame = pd.DataFrame({"supplier_id": pos["supplier_id"], "days": days})[mask.to_numpy()]
    if frame.empty:
        return pd.DataFrame(columns=list(SUPPLIER_COLUMNS))
    frame = frame.assign(late=frame["days"] > 0, added=frame["days"].clip(lower=0))
    out = frame.groupby("supplier_id").agg(
        purchase_orders=("days", "size"), late=("late", "sum"), days_added=("added", "sum")
    )
    out = out.reset_index().astype({"late": int, "days_added": float})
    return out.sort_values(
        ["days_added", "supplier_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _plants(settled: pd.DataFrame) -> pd.DataFrame:
    if settled.empty:
        return pd.DataFrame(columns=list(PLANT_COLUMNS))
    rows = settled.assign(late_days=settled["days_late"].where(settled["late"], 0.0))
    out = rows.groupby("plant_id").agg(
        delivered=("late", "size"), late=("late", "sum"), days_late=("late_days", "sum")
    )
    out = out.reset_index().astype({"late": int, "days_late": float})
    out.insert(3, "on_time_rate", 1 - out["late"] / out["delivered"])
    return out.sort_values(
        ["days_late", "plant_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _owner_key(stage: str, owners: Mapping[str, StageOwner]) -> str:
    """An owner as the board names it in its tables and links: its English name (the page shows
    it in the reader's language)."""
    owner = owner_of(stage, owners)
    return "" if owner is None else owner.en
