"""What would help: one open order's data with a planner's changes applied, and the standard
levers the product tries on its own.

A what-if changes **this order's own rows** — its purchase orders, its stages, its due date — in
a copy of the dataset, and its features are rebuilt as of the same moment through
``features.build`` like any other (so the answer is the model's, not a rule of thumb; every other
order, supplier and plant stays as recorded). A change's date is read in the dataset's time zone:

- **on or before the as_of's date** it is a fact that happened that day (at the end of it, or at
  the as_of when that is earlier): a purchase order received, a stage finished, production
  started — with the stages before it finished then too;
- **after it**, a plan, in the fields the contract keeps for the future: a purchase order's
  ``promised_date``, a stage's ``planned_end`` (the stages after it move with it when it ends
  later than planned), the due date.

A purchase order received on a later date is *assured*: it no longer weighs on the order as an
open one (``features.procurement_features.ASSURED_COLUMN``), its promised date is that date, and
the supplier's record does not count it (it has not arrived). The order's last open purchase
order received finishes its procurement stage then (or plans it to).

Levers (``standard_levers``): expedite the order's latest open purchase order to its promised
date (today when that date has passed); start production now (only once no purchase order is
open: production cannot start before its material is in); ship as fast as the fastest tenth of
its plant's shipments to the same customer group took; move the due date by a week. Each is a
list of changes, tried through the same path as a planner's; ``lever_order`` ranks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data.contract import STAGES
from data.dataset import Dataset
from features.procurement_features import ASSURED_COLUMN
from features.queries import group_column
from features.registry import CUSTOMER_GROUP_COLUMNS
from serving.errors import ApiError
from serving.schemas import STAGE_UNIT, DueDate, ForecastOut

ProcessStage = Literal[STAGES]  # type: ignore[valid-type]

MAX_CHANGES = 20
MAX_SHIP_DAYS = 60
PLAN_HORIZON_DAYS = 730
"""A planned date at most this many days after the as_of (later is a typo, not a plan)."""
LEVER_DUE_DAYS = 7
"""The due-date lever: moved by a week."""
FAST_SHIPPING_QUANTILE = 0.1
"""The ship-faster lever's target: this quantile of the shipping days seen on the route."""
MIN_ROUTE_SHIPMENTS = 5
"""Fewer completed shipments on a route than this: the lever uses the plant's."""


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoReceived(_Change):
    """One of the order's open purchase orders received on ``date`` (a later date: the
    supplier's new promised date)."""

    kind: Literal["po_received"] = "po_received"
    po_id: str = Field(min_length=1, max_length=200)
    date: DueDate


class ProductionStarted(_Change):
    """Production started on ``date`` (the stages before it finished by then)."""

    kind: Literal["production_started"] = "production_started"
    date: DueDate


class StageFinished(_Change):
    """``stage`` finished on ``date`` (the stages before it too)."""

    kind: Literal["stage_finished"] = "stage_finished"
    stage: ProcessStage
    date: DueDate


class ShipFaster(_Change):
    """Shipping planned to take ``days`` days less."""

    kind: Literal["ship_faster"] = "ship_faster"
    days: int = Field(ge=1, le=MAX_SHIP_DAYS)


class DueDateMoved(_Change):
    """The due date agreed with the customer moved to ``date``."""

    kind: Literal["due_date_moved"] = "due_date_moved"
    date: DueDate


Change = Annotated[
    PoReceived | ProductionStarted | StageFinished | ShipFaster | DueDateMoved,
    Field(discriminator="kind"),
]


class WhatIfIn(BaseModel):
    """The changes to try on one order; an empty list answers its current state."""

    model_config = ConfigDict(extra="forbid")

    changes: list[Change] = Field(default_factory=list, max_length=MAX_CHANGES)


@dataclass(frozen=True)
class Lever:
    """A standard lever for one order: what it is, the changes it makes, and what it says."""

    kind: str
    changes: tuple[_Change, ...]
    message: str
    """The catalogue key of its description (``serving.messages``)."""
    params: dict


@dataclass
class _Edit:
    """The order's own rows being changed (copies), and what the checks need."""

    dataset: Dataset
    order_id: str
    t: pd.Timestamp
    today: date
    order_row: object
    """The order's index label in ``orders``."""
    orders: pd.DataFrame
    stages: pd.DataFrame | None
    stage_rows: dict[str, int]
    pos: pd.DataFrame | None

    def end_of(self, day: date) -> pd.Timestamp:
        """The event time of a fact dated ``day``: the end of that day in the dataset's zone,
        or the as_of when that is earlier."""
        end = pd.Timestamp(day + timedelta(days=1)).tz_localize(self.dataset.tz) - pd.Timedelta(
            seconds=1
        )
        return min(end.tz_convert("UTC"), self.t)

    def plan_of(self, day: date) -> pd.Timestamp:
        """A planned end dated ``day``: the end of that day (UTC)."""
        end = pd.Timestamp(day + timedelta(days=1)).tz_localize(self.dataset.tz)
        return (end - pd.Timedelta(seconds=1)).tz_convert("UTC")

    def stage_value(self, stage: str, column: str) -> pd.Timestamp | None:
        if self.stages is None or stage not in self.stage_rows or column not in self.stages:
            return None
        value = self.stages.at[self.stage_rows[stage], column]
        return None if pd.isna(value) else value

    def done(self, stage: str) -> bool:
        end = self.stage_value(stage, "completed_at")
        return end is not None and end <= self.t

    def set_stage(self, stage: str, column: str, value: pd.Timestamp) -> None:
        assert self.stages is not None
        if column not in self.stages.columns:
            self.stages[column] = pd.Series(pd.NaT, index=self.stages.index, dtype=_UTC)
        self.stages.at[self.stage_rows[stage], column] = value


_UTC = "datetime64[ns, UTC]"


def local_today(dataset: Dataset, t: pd.Timestamp) -> date:
    """The as_of's calendar date in the dataset's time zone."""
    return t.tz_convert(dataset.tz).date()


def apply_changes(
    dataset: Dataset, order_id: str, t: pd.Timestamp, changes: Sequence[_Change]
) -> Dataset:
    """``dataset`` with ``changes`` made to the open order ``order_id`` as of ``t`` (the rules
    in the module's docstring), in order. A purchase order that is not this order's: 404
    ``unknown_po``; a change the order's data cannot take (a stage it does not have or already
    finished, a date before the order existed or too far ahead): 422 naming the fix."""
    edit = _start(dataset, order_id, t)
    for k, change in enumerate(changes):
        where = f"body.changes.{k}"
        if isinstance(change, PoReceived):
            _po_received(edit, change, where)
        elif isinstance(change, ProductionStarted):
            _stage_reached(edit, "production", change.date, where, started=True)
        elif isinstance(change, StageFinished):
            _stage_reached(edit, change.stage, change.date, where, started=False)
        elif isinstance(change, ShipFaster):
            _ship_faster(edit, change, where)
        elif isinstance(change, DueDateMoved):
            _check_date(edit, change.date, where, planned_ok=True)
            edit.orders.at[edit.order_row, "due_date"] = pd.Timestamp(change.date)
    return replace(
        dataset,
        orders=edit.orders,
        order_stages=edit.stages if edit.stages is not None else dataset.order_stages,
        purchase_orders=edit.pos if edit.pos is not None else dataset.purchase_orders,
    )


def _start(dataset: Dataset, order_id: str, t: pd.Timestamp) -> _Edit:
    orders = dataset.orders.copy()
    row = orders.index[int(np.flatnonzero(orders["order_id"].to_numpy() == order_id)[0])]
    stages, stage_rows = None, {}
    if dataset.order_stages is not None:
        stages = dataset.order_stages.copy()
        mine = np.flatnonzero(stages["order_id"].to_numpy() == order_id)
        stage_rows = {str(stages.at[i, "stage"]): int(i) for i in stages.index[mine]}
    pos = None if dataset.purchase_orders is None else dataset.purchase_orders.copy()
    return _Edit(
        dataset, order_id, t, local_today(dataset, t), row, orders, stages, stage_rows, pos
    )


def _check_date(edit: _Edit, day: date, where: str, *, planned_ok: bool) -> None:
    created = edit.orders.at[edit.order_row, "created_at"].tz_convert(edit.dataset.tz).date()
    if day < created:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.date: {day} is before order {edit.order_id!r} was created ({created}); "
            "give a date on or after it",
        )
    latest = edit.today + timedelta(days=PLAN_HORIZON_DAYS)
    if day > latest:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.date: {day} is more than {PLAN_HORIZON_DAYS} days after the as_of "
            f"({edit.today}); give a nearer date",
        )
    if not planned_ok and day > edit.today:
        raise ApiError(422, "invalid_change", f"{where}.date: {day} is after {edit.today}")


def _po_received(edit: _Edit, change: PoReceived, where: str) -> None:
    pos = edit.pos
    hit = (
        np.flatnonzero(
            (pos["po_id"].astype(str).to_numpy() == change.po_id)
            & (pos["order_id"].to_numpy(dtype=object) == edit.order_id)
        )
        if pos is not None and "order_id" in pos.columns
        else np.array([], dtype=np.intp)
    )
    if not len(hit):
        raise ApiError(
            404,
            "unknown_po",
            f"{where}.po_id: purchase order {change.po_id!r} is not one of order "
            f"{edit.order_id!r}'s (purchase_orders.order_id); the order's open purchase orders "
            "are listed by GET /v1/orders/{order_id}/levers",
        )
    assert pos is not None
    i = pos.index[int(hit[0])]
    received = pos.at[i, "received_at"] if "received_at" in pos.columns else pd.NaT
    if pd.notna(received) and received <= edit.t:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.po_id: purchase order {change.po_id!r} was already received "
            f"({received.isoformat()}); choose an open one",
        )
    _check_date(edit, change.date, where, planned_ok=True)
    placed = pos.at[i, "created_at"]
    if change.date < placed.tz_convert(edit.dataset.tz).date():
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.date: {change.date} is before purchase order {change.po_id!r} was "
            f"placed ({placed.tz_convert(edit.dataset.tz).date()}); give a later date",
        )
    if change.date <= edit.today:
        if "received_at" not in pos.columns:
            pos["received_at"] = pd.Series(pd.NaT, index=pos.index, dtype=_UTC)
        pos.at[i, "received_at"] = max(edit.end_of(change.date), placed)
    else:
        pos.at[i, "promised_date"] = pd.Timestamp(change.date)
        if ASSURED_COLUMN not in pos.columns:
            pos[ASSURED_COLUMN] = False
        pos.at[i, ASSURED_COLUMN] = True
    # The order's last open purchase order in: its procurement is done then (or planned to be).
    if _open_po_rows(edit).size == 0 and "procurement" in edit.stage_rows:
        began = edit.stage_value("procurement", "started_at")
        if not edit.done("procurement") and (
            began is None or began.tz_convert(edit.dataset.tz).date() <= change.date
        ):
            _stage_reached(edit, "procurement", change.date, where, started=False)


def _open_po_rows(edit: _Edit) -> np.ndarray:
    """Positions in ``edit.pos`` of the order's purchase orders still weighing on it."""
    return _open_positions(edit.pos, edit.order_id, edit.t)


def _open_positions(pos: pd.DataFrame | None, order_id: str, t: pd.Timestamp) -> np.ndarray:
    """Positions in ``pos`` of ``order_id``'s purchase orders open at ``t``: placed, not
    received, not assured (what ``features.procurement_features`` counts as open)."""
    if pos is None or "order_id" not in pos.columns:
        return np.array([], dtype=np.intp)
    mine = (pos["order_id"].to_numpy(dtype=object) == order_id) & (
        pos["created_at"] <= t
    ).to_numpy()
    if "received_at" in pos.columns:
        mine &= ~(pos["received_at"] <= t).to_numpy()
    if ASSURED_COLUMN in pos.columns:
        mine &= ~pos[ASSURED_COLUMN].to_numpy(dtype=bool)
    return np.flatnonzero(mine)


def _stage_reached(edit: _Edit, stage: str, day: date, where: str, *, started: bool) -> None:
    """``stage`` started (``started``) or finished on ``day``; the stages before it finish by
    then."""
    _need_stages(edit, where)
    if stage not in edit.stage_rows:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}: order {edit.order_id!r} has no {stage} stage (order_stages); choose one "
            f"of {', '.join(s for s in STAGES if s in edit.stage_rows)}",
        )
    if edit.done(stage):
        raise ApiError(
            422,
            "invalid_change",
            f"{where}: the {stage} stage is already finished; choose a later stage",
        )
    began = edit.stage_value(stage, "started_at")
    if started and began is not None and began <= edit.t:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}: {stage} already started ({began.isoformat()}); try stage_finished",
        )
    _check_date(edit, day, where, planned_ok=True)
    if not started and began is not None and day < began.tz_convert(edit.dataset.tz).date():
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.date: {day} is before the {stage} stage started "
            f"({began.tz_convert(edit.dataset.tz).date()}); give a later date",
        )
    before = [s for s in STAGES[: STAGES.index(stage)] if s in edit.stage_rows]
    pending = [s for s in before if not edit.done(s)]
    if day <= edit.today:
        at = edit.end_of(day)
        for s in pending:
            _finish(edit, s, at)
        if started:
            edit.set_stage(stage, "started_at", at)
        else:
            _finish(edit, stage, at)
        return
    plan = edit.plan_of(day)
    for s in pending:
        planned = edit.stage_value(s, "planned_end")
        if planned is None or planned > plan:
            edit.set_stage(s, "planned_end", plan)
    if not started:
        _replan(edit, stage, plan)


def _finish(edit: _Edit, stage: str, at: pd.Timestamp) -> None:
    began = edit.stage_value(stage, "started_at")
    edit.set_stage(stage, "completed_at", at if began is None else max(at, began))


def _replan(edit: _Edit, stage: str, plan: pd.Timestamp) -> None:
    """``stage``'s planned end moved to ``plan``; when later than before, the stages after it
    move by as much (their plans assumed it ended on time)."""
    old = edit.stage_value(stage, "planned_end")
    edit.set_stage(stage, "planned_end", plan)
    if old is None or plan <= old:
        return
    for s in STAGES[STAGES.index(stage) + 1 :]:
        later = edit.stage_value(s, "planned_end")
        if s in edit.stage_rows and later is not None and not edit.done(s):
            edit.set_stage(s, "planned_end", later + (plan - old))


def _need_stages(edit: _Edit, where: str) -> None:
    if edit.stages is None:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}: the dataset has no order_stages table, so a stage cannot be changed; "
            "only po_received and due_date_moved apply",
        )


def _ship_faster(edit: _Edit, change: ShipFaster, where: str) -> None:
    _need_stages(edit, where)
    planned = edit.stage_value("shipping", "planned_end")
    if "shipping" not in edit.stage_rows or planned is None or edit.done("shipping"):
        raise ApiError(
            422,
            "invalid_change",
            f"{where}: order {edit.order_id!r} has no shipping stage still to come with a "
            "planned end (order_stages.planned_end); nothing to make faster",
        )
    floor = max([edit.t, *_planned_before(edit, "shipping")])
    most = int((planned - floor) / pd.Timedelta(days=1))
    if change.days > most:
        raise ApiError(
            422,
            "invalid_change",
            f"{where}.days: shipping is planned to end {planned.isoformat()}, so it can be at "
            f"most {max(most, 0)} day(s) faster (not before now or the stage before it); give "
            "a smaller number",
        )
    edit.set_stage("shipping", "planned_end", planned - pd.Timedelta(days=change.days))


def _planned_before(edit: _Edit, stage: str) -> list[pd.Timestamp]:
    out = []
    for s in STAGES[: STAGES.index(stage)]:
        value = edit.stage_value(s, "planned_end")
        if value is not None and not edit.done(s):
            out.append(value)
    return out


# -- the standard levers ----------------------------------------------------------------------


def open_purchase_orders(dataset: Dataset, order_id: str, t: pd.Timestamp) -> pd.DataFrame:
    """The order's purchase orders placed and not received at ``t``, latest promised first."""
    pos = dataset.purchase_orders
    if pos is None or "order_id" not in pos.columns:
        return pd.DataFrame(columns=["po_id", "supplier_id", "promised_date"])
    mine = pos.iloc[_open_positions(pos, order_id, t)]
    return mine.sort_values(["promised_date", "po_id"], ascending=[False, True], kind="stable")


def standard_levers(dataset: Dataset, order_id: str, t: pd.Timestamp) -> list[Lever]:
    """The standard levers that apply to the open order ``order_id`` at ``t``."""
    today = local_today(dataset, t)
    out: list[Lever] = []
    po = open_purchase_orders(dataset, order_id, t)
    if len(po):
        first = po.iloc[0]
        promised = pd.Timestamp(first["promised_date"]).date()
        out.append(
            Lever(
                "expedite_po",
                (PoReceived(po_id=str(first["po_id"]), date=max(promised, today)),),
                "lever.expedite_po",
                {"po_id": str(first["po_id"]), "supplier_id": str(first["supplier_id"])},
            )
        )
    stages = _own_stages(dataset, order_id)
    production = stages.get("production")
    # Production cannot start before its material is in: with an open purchase order, the
    # lever is the expedite.
    if production is not None and not len(po) and not _happened(production.get("started_at"), t):
        out.append(
            Lever(
                "start_production",
                (ProductionStarted(date=today),),
                "lever.start_production",
                {},
            )
        )
    faster = _shipping_days_saved(dataset, order_id, t, stages)
    if faster >= 1:
        out.append(
            Lever("ship_faster", (ShipFaster(days=faster),), "lever.ship_faster", {"days": faster})
        )
    due = dataset.orders.loc[dataset.orders["order_id"] == order_id, "due_date"].iloc[0]
    moved = (pd.Timestamp(due) + pd.Timedelta(days=LEVER_DUE_DAYS)).date()
    out.append(
        Lever(
            "move_due_date",
            (DueDateMoved(date=moved),),
            "lever.move_due_date",
            {"days": LEVER_DUE_DAYS, "date": moved.isoformat()},
        )
    )
    return out


def _own_stages(dataset: Dataset, order_id: str) -> dict[str, dict]:
    stages = dataset.order_stages
    if stages is None:
        return {}
    mine = stages[stages["order_id"].to_numpy(dtype=object) == order_id]
    return {str(r["stage"]): r for r in mine.to_dict("records")}


def _happened(value: object, t: pd.Timestamp) -> bool:
    return value is not None and not pd.isna(value) and value <= t


def _shipping_days_saved(
    dataset: Dataset, order_id: str, t: pd.Timestamp, stages: dict[str, dict]
) -> int:
    """Whole days the order's planned shipping would save at the pace of the fastest tenth of
    the completed shipments (started and finished by ``t``) from its plant to its customer
    group (its plant's, when the route has too few); 0 when it would save none."""
    ship = stages.get("shipping")
    if ship is None or pd.isna(ship.get("planned_end")) or _happened(ship.get("completed_at"), t):
        return 0
    all_stages = dataset.order_stages
    assert all_stages is not None
    if "started_at" not in all_stages.columns or "completed_at" not in all_stages.columns:
        return 0
    orders = dataset.orders
    group = group_column(orders, CUSTOMER_GROUP_COLUMNS, "customer_id")
    me = orders.loc[orders["order_id"] == order_id].iloc[0]
    done = all_stages[
        (all_stages["stage"] == "shipping")
        & (all_stages["completed_at"] <= t)
        & (all_stages["started_at"] <= t)
    ]
    info = orders.set_index("order_id").loc[done["order_id"], ["plant_id", group]]
    took = (done["completed_at"] - done["started_at"]).dt.total_seconds().to_numpy() / 86400
    plant = info["plant_id"].to_numpy(dtype=object) == me["plant_id"]
    route = plant & (info[group].to_numpy(dtype=object) == me[group])
    seen = took[route] if route.sum() >= MIN_ROUTE_SHIPMENTS else took[plant]
    if len(seen) < MIN_ROUTE_SHIPMENTS:
        return 0
    fastest = float(np.quantile(seen, FAST_SHIPPING_QUANTILE))
    starts = [
        v
        for s in STAGES[: STAGES.index("shipping")]
        if (v := stages.get(s, {}).get("planned_end")) is not None and not pd.isna(v)
    ]
    begin = max([t, *starts])
    planned_days = (ship["planned_end"] - begin) / pd.Timedelta(days=1)
    return int(max(0.0, min(planned_days - max(fastest, 0.0), MAX_SHIP_DAYS)))


# -- the API's bodies -------------------------------------------------------------------------


class Outcome(ForecastOut):
    """The order's risk, cause and forecast in one state (now, or with changes)."""

    risk: float = Field(description="Probability of missing the due date (1: past due).")
    top_stage: str = Field(
        description="The stage that adds the most days beyond its plan if the order is late."
    )
    owner: str | None = Field(default=None, description="The department owning `top_stage`.")
    stage_contributions: dict[str, float] = Field(description=STAGE_UNIT)
    reasons: list[str]


class WhatIfOut(BaseModel):
    """One order now and with the changes asked for, as of the same moment."""

    model_version: str
    order_id: str
    as_of: datetime
    changes: list[Change]
    current: Outcome
    after: Outcome
    risk_change: float = Field(description="`after.risk` minus `current.risk`.")
    days_late_change: float | None = Field(
        default=None,
        description="`after.predicted_days_late` minus `current.predicted_days_late` (null "
        "without a forecast).",
    )


class OpenPurchaseOrder(BaseModel):
    po_id: str
    supplier_id: str
    promised_date: date


class LeverOut(BaseModel):
    """A standard lever tried on the order."""

    lever: Literal["expedite_po", "start_production", "ship_faster", "move_due_date"]
    description: str = Field(description="What to do, for people, in the request's language.")
    changes: list[Change] = Field(description="The lever as a what-if body's changes.")
    after: Outcome
    risk_change: float
    days_late_change: float | None = None
    summary: str = Field(description='e.g. "expedite purchase order P-1 ...: risk 0.83 → 0.41".')


class LeversOut(BaseModel):
    """The standard levers that apply to one order, each tried; ``best`` helps most."""

    model_version: str
    order_id: str
    as_of: datetime
    current: Outcome
    levers: list[LeverOut] = Field(description="Every lever that applies, most helpful first.")
    best: LeverOut | None = Field(
        description="The lever that lowers the risk most (for an order past due: the "
        "predicted days late); moving the due date only when no other lever helps; null "
        "when none helps."
    )
    open_purchase_orders: list[OpenPurchaseOrder] = Field(
        description="The order's open purchase orders (ids a `po_received` change can name)."
    )


def lever_order(levers: Sequence[LeverOut]) -> list[LeverOut]:
    """Most helpful first: operational levers before the due-date move (a concession to the
    customer, not a fix), then by the risk after, then by the days late after."""

    def key(lever: LeverOut) -> tuple:
        days = lever.after.predicted_days_late
        return (lever.lever == "move_due_date", lever.after.risk, np.inf if days is None else days)

    helping = sorted((lv for lv in levers if helps(lv)), key=key)
    rest = sorted((lv for lv in levers if not helps(lv)), key=key)
    return helping + rest


def helps(lever: LeverOut) -> bool:
    """Lowers the risk; for an order whose risk cannot fall (past due), its days late."""
    if lever.risk_change < -HELP_MARGIN:
        return True
    return (
        lever.risk_change <= HELP_MARGIN
        and lever.days_late_change is not None
        and lever.days_late_change < -HELP_DAYS
    )


HELP_MARGIN = 1e-3
"""A lever changing the risk by less than this did nothing to it."""
HELP_DAYS = 0.1
"""Nor one moving the forecast by less than this many days."""
