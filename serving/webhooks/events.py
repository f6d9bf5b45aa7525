"""What to send: the events between two scoring runs and the body of each, pure (no store, no
network).

For each new run, each webhook gets one event per order that newly crosses its threshold
(``threshold_crossed``: at or above now, below it or absent in the previous current run) and,
separately, per order whose risk rose by more than its step (``risk_rose``), whose predicted
delivery moved past its due date (``forecast_late``: ``predicted_days_late`` at most 0 in the
previous current run, above 0 now) or by at least ``forecast_step_days`` either way
(``forecast_moved``). Runs without a forecast (models trained before it) have no forecast events,
nor does an order the previous run had no forecast of. Every event's body carries the order's
forecast.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, SupportsFloat

import numpy as np
import pandas as pd

from serving.acks import Ack
from serving.columns import FORECAST_COLUMNS, reasons_column, reasons_in
from serving.owners import owner_of
from serving.runs import RunInfo
from serving.schemas import forecast_records
from serving.webhooks.config import WebhookConfig

TRIGGERS: tuple[str, ...] = (
    "threshold_crossed",
    "forecast_late",
    "risk_rose",
    "stage_changed",
    "forecast_moved",
    "ack_lapsed",
)
"""What makes an order's event, most telling first: an order with several sends one event named
after the first of them (``event``), all of them listed in its ``triggers``."""

DIGEST = "digest"
EVENTS: tuple[str, ...] = (*TRIGGERS, DIGEST)
DIGEST_TOP = 10
"""Orders a digest lists one by one (the riskiest); the rest are counted."""

TOLD_COLUMNS: tuple[str, ...] = (
    "risk",
    "top_stage",
    "predicted_days_late",
    "predicted_delivery_date",
    "due_date",
    "reasons",
)
"""What a receiver was last told of an order (``webhook_order_state``), the next event's base."""


def idempotency_key(webhook_id: str, run_id: str, order_id: str, event: str) -> str:
    """Stable per (webhook, run, order, event): re-enqueueing a run cannot create a duplicate."""
    raw = f"{webhook_id}\x1f{run_id}\x1f{order_id}\x1f{event}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def find_events(current: pd.DataFrame, previous: pd.DataFrame | None, **knobs: Any) -> pd.DataFrame:
    """Events between what a receiver knows of each order and the current run's rows: the
    current rows plus ``event``, ``previous_risk``, ``previous_top_stage``,
    ``previous_predicted_days_late``, ``previous_predicted_delivery_date`` and
    ``previous_reasons``, one row per (order, trigger); an order can have several. ``knobs``:
    the receiver's knobs and what it knows (:func:`judge`)."""
    judged = judge(current, previous, **knobs)
    parts = [
        judged.rows.loc[mask].assign(event=name, **judged.previous(mask))
        for name, mask in judged.triggers.items()
    ]
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["risk", "event"], ascending=[False, True], kind="stable")


def order_events(
    current: pd.DataFrame, previous: pd.DataFrame | None, *, cap: int, **knobs: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One event per order with something to say, named after its first trigger in
    ``TRIGGERS``' order (all of them in ``triggers``), riskiest first, with the columns of
    :func:`find_events`: the first ``cap`` to send, the rest (the overflow) for one digest."""
    judged = judge(current, previous, **knobs)
    names = np.array(list(judged.triggers))
    hits = np.column_stack([m.to_numpy(dtype=bool) for m in judged.triggers.values()])
    some = hits.any(axis=1)
    chosen = pd.Series(some, index=judged.rows.index)
    out = judged.rows.loc[chosen].assign(
        event=names[hits[some].argmax(axis=1)],
        triggers=[list(names[h]) for h in hits[some]],
        **judged.previous(chosen),
    )
    out = out.sort_values(["risk", "order_id"], ascending=[False, True], kind="stable")
    return out.iloc[:cap], out.iloc[cap:]


@dataclass(frozen=True)
class Judged:
    """A run's rows a receiver subscribes to (acknowledged ones in force left out), what it
    knew of each before (``before``, ``TOLD_COLUMNS``), their acknowledgement and its lapse, and
    each trigger's mask, in ``TRIGGERS``' order."""

    rows: pd.DataFrame
    before: pd.DataFrame
    acks: pd.Series
    lapse: pd.Series
    triggers: dict[str, pd.Series]

    def previous(self, mask: pd.Series) -> dict[str, Any]:
        """The columns beside the current ones of the rows in ``mask``."""
        before, acks = self.before[mask], self.acks[mask]
        return {
            "previous_risk": pd.to_numeric(before["risk"]),
            "previous_top_stage": before["top_stage"],
            "previous_predicted_days_late": pd.to_numeric(before["predicted_days_late"]),
            "previous_predicted_delivery_date": before["predicted_delivery_date"],
            "previous_reasons": before["reasons"],
            "ack_id": [None if pd.isna(a) else a.ack_id for a in acks],
            "ack_risk": [None if pd.isna(a) else a.risk for a in acks],
            "ack_lapsed": self.lapse[mask],
        }


def judge(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    threshold: float,
    risk_step: float,
    forecast_step_days: float = WebhookConfig.forecast_step_days,
    plant_id: str | None = None,
    customer_id: str | None = None,
    told: pd.DataFrame | None = None,
    stages: Collection[str] | None = None,
    plants: Collection[str] | None = None,
    customers: Collection[str] | None = None,
    acks: Mapping[str, Ack] | None = None,
    today: date | None = None,
    lang: str = "en",
) -> Judged:
    """What changed for a receiver of the current run.

    What the receiver knows of an order is what its last event said (``told``, indexed by
    order id, ``TOLD_COLUMNS`` plus ``sent_at``), else the previous current run's row: an order
    whose risk wobbles around the threshold is not announced again each time it crosses back.
    Orders with an acknowledgement in force (``acks``, judged on ``today``) have no event; one
    whose acknowledgement lapsed since its last event has ``ack_lapsed`` (at or above the
    threshold). Subscriptions: only the top ``stages`` of the owners asked for, ``plants``,
    ``customers`` (and the older single ``plant_id`` / ``customer_id``). Forecast events need a
    forecast on both sides: a run without one (NaN ``predicted_days_late``) has none."""
    rows = _subscribed(current, plant_id, customer_id, stages, plants, customers)
    acks = acks or {}
    today = today or date.today()
    ack_of = rows["order_id"].map(acks) if acks else pd.Series(None, index=rows.index)
    has_ack = ack_of.notna()
    # Judged only where there is an acknowledgement: a run has 100,000 rows, few of them one.
    lapse = pd.Series(None, index=rows.index, dtype=object)
    if has_ack.any():
        lapse[has_ack] = [
            a.lapse(r, today)
            for a, r in zip(ack_of[has_ack], rows.loc[has_ack, "risk"], strict=True)
        ]
    in_force = has_ack & lapse.isna()
    if in_force.any():
        rows, ack_of, lapse = rows[~in_force], ack_of[~in_force], lapse[~in_force]
    before = _previous(rows, previous, lang)
    sent_at = pd.Series(pd.NaT, index=rows.index)
    if told is not None and len(told):
        known = rows["order_id"].isin(told.index)
        ids = rows.loc[known, "order_id"]
        for column in TOLD_COLUMNS:
            before.loc[known, column] = ids.map(told[column]).to_numpy()
        sent_at = rows["order_id"].map(told["sent_at"])
    lapsed = lapse.notna()
    news = pd.Series(False, index=rows.index)
    if lapsed.any():
        # An order acknowledged before this receiver heard of it: its risk then is the base,
        # not the previous run's (the run it was silenced in).
        untold = lapsed & sent_at.isna()
        before.loc[untold, "risk"] = [a.risk for a in ack_of[untold]]
        # A lapsed acknowledgement is news until the receiver is told of the order after it.
        news[lapsed] = [
            pd.isna(told_at) or told_at < a.created_at
            for told_at, a in zip(sent_at[lapsed], ack_of[lapsed], strict=True)
        ]
    risk = rows["risk"]
    prev_risk = pd.to_numeric(before["risk"])
    late_now = _column(rows, "predicted_days_late")
    late_before = pd.to_numeric(before["predicted_days_late"])
    moved = (_delivery_day(rows) - _delivery_day(before)).abs()
    triggers = {
        "threshold_crossed": (risk >= threshold) & (prev_risk.isna() | (prev_risk < threshold)),
        # NaN compares false: without a forecast in either run, no forecast event.
        "forecast_late": (late_now > 0) & (late_before <= 0),
        "risk_rose": prev_risk.notna() & ((risk - prev_risk) > risk_step),
        "stage_changed": before["top_stage"].notna()
        & (before["top_stage"] != rows["top_stage"])
        & (risk >= threshold),
        "forecast_moved": moved >= forecast_step_days,
        "ack_lapsed": lapsed & news & (risk >= threshold),
    }
    assert tuple(triggers) == TRIGGERS
    return Judged(rows, before, ack_of, lapse, triggers)


def _subscribed(
    rows: pd.DataFrame,
    plant_id: str | None,
    customer_id: str | None,
    stages: Collection[str] | None,
    plants: Collection[str] | None,
    customers: Collection[str] | None,
) -> pd.DataFrame:
    """The rows a subscription asks for."""
    mask = pd.Series(True, index=rows.index)
    if plant_id is not None:
        mask &= rows["plant_id"] == plant_id
    if customer_id is not None:
        mask &= rows["customer_id"] == customer_id
    if stages is not None:
        mask &= rows["top_stage"].isin(list(stages))
    if plants is not None:
        mask &= rows["plant_id"].isin(list(plants))
    if customers is not None:
        mask &= rows["customer_id"].isin(list(customers))
    return rows if mask.all() else rows[mask]


def _previous(rows: pd.DataFrame, previous: pd.DataFrame | None, lang: str) -> pd.DataFrame:
    """The previous run's risk, top stage, forecast, due date and reasons (in ``lang``) of each
    of ``rows``' orders (NaN where the previous run did not have the order), indexed like
    ``rows``."""
    if previous is None or not len(previous):
        return pd.DataFrame(
            {
                "risk": np.nan,
                "top_stage": None,
                "predicted_days_late": np.nan,
                "predicted_delivery_date": None,
                "due_date": pd.NaT,
                "reasons": None,
            },
            index=rows.index,
        )
    prev = previous.drop_duplicates("order_id").set_index("order_id")
    prev = prev.assign(reasons=reasons_in(prev, lang))
    ids = rows["order_id"]
    out = pd.DataFrame({c: ids.map(_column(prev, c)) for c in TOLD_COLUMNS}, index=rows.index)
    # Text columns hold None where missing, so the receiver's own values can be put in.
    for column in ("top_stage", "predicted_delivery_date", "reasons"):
        out[column] = out[column].astype(object)
    out["risk"] = pd.to_numeric(out["risk"])
    out["predicted_days_late"] = pd.to_numeric(out["predicted_days_late"])
    out["due_date"] = pd.to_datetime(out["due_date"])
    return out


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """``rows[name]``, or NaN throughout for rows recorded without it."""
    return rows[name] if name in rows.columns else pd.Series(np.nan, index=rows.index)


def _delivery_day(rows: pd.DataFrame) -> pd.Series:
    """When each order is predicted to be delivered, in days since 1970 (the end of its due date
    plus its days late): the forecast's movement counts a moved due date too."""
    due = pd.to_datetime(rows["due_date"])
    days = (due - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return days + 1 + pd.to_numeric(_column(rows, "predicted_days_late"))


def event_payload(
    hook: dict | Any,
    run: RunInfo,
    row: dict,
    key: str,
    config: WebhookConfig | None = None,
) -> dict:
    """The JSON body of one event (field names in English; the stage name and the reasons in
    the webhook's language, the reasons as the run recorded them in it), with the order's
    delivery forecast as the API gives it (null for a run without one) and the previous run's
    days late and delivery date; ``owner``, every ``triggers`` of the event and what
    ``changed`` since what the receiver was last told of the order."""
    from serving.i18n import stage_name

    config = config or WebhookConfig()
    due = row.get("due_date")
    said = _reasons(row, hook["lang"])
    forecast = forecast_records({c: [row.get(c)] for c in FORECAST_COLUMNS}, 1)[0]
    before = row.get("previous_predicted_delivery_date")
    before = before if isinstance(before, str) else None
    owner = owner_of(row["top_stage"], config.stage_owners)
    return {
        "event": row["event"],
        "triggers": list(row.get("triggers") or [row["event"]]),
        "idempotency_key": key,
        "webhook_id": hook["webhook_id"],
        "order_id": str(row["order_id"]),
        "risk": round(float(row["risk"]), 6),
        "previous_risk": None
        if pd.isna(row["previous_risk"])
        else round(float(row["previous_risk"]), 6),
        "threshold": hook["threshold"],
        "top_stage": row["top_stage"],
        "top_stage_name": stage_name(row["top_stage"], hook["lang"]),
        "reasons": said,
        "owner": None if owner is None else owner.name(hook["lang"]),
        "owner_contact": None if owner is None else owner.contact,
        "changed": _changed(row, said, forecast["predicted_delivery_date"], before),
        "plant_id": _text(row.get("plant_id")),
        "customer_id": _text(row.get("customer_id")),
        "due_date": None if pd.isna(due) else pd.Timestamp(due).strftime("%Y-%m-%d"),
        **forecast,
        "previous_predicted_days_late": _number(row.get("previous_predicted_days_late")),
        "previous_predicted_delivery_date": before,
        "forecast_step_days": config.forecast_step_days,
        "model_version": run.model_version,
        "run_id": run.run_id,
        "scored_at": run.created_at.astimezone(UTC).isoformat(),
        "as_of": pd.Timestamp(run.as_of).isoformat(),
    }


def _reasons(row: Mapping, lang: str) -> list[str]:
    """The row's reasons in ``lang`` (a run recorded before reasons were stored per language
    has only its own ``reasons``)."""
    said = row.get(reasons_column(lang))
    return list(said if isinstance(said, list | tuple) else row["reasons"])


def _changed(row: Mapping, said: list[str], delivery: str | None, before: str | None) -> dict:
    """What changed since the receiver last heard of the order (or since the previous run, for
    an order it never heard of): risk and top stage before -> after, the predicted delivery, the
    reasons that are new, and a lapsed acknowledgement."""
    was = row.get("previous_reasons")
    old = set(was) if isinstance(was, list | tuple) else set()
    changed: dict[str, Any] = {
        "risk": {"before": _rounded(row.get("previous_risk")), "after": _rounded(row["risk"])},
        "top_stage": {"before": _text(row.get("previous_top_stage")), "after": row["top_stage"]},
        "predicted_delivery_date": {"before": before, "after": delivery},
        "new_reasons": [r for r in said if r not in old],
    }
    if _text(row.get("ack_id")) is not None:
        changed["acknowledgement"] = {
            "ack_id": row["ack_id"],
            "lapsed": row.get("ack_lapsed"),
            "risk_when_acknowledged": _rounded(row.get("ack_risk")),
        }
    return changed


def digest_payload(
    hook: dict | Any, run: RunInfo, overflow: pd.DataFrame, key: str, config: WebhookConfig
) -> dict:
    """The one event that stands for the orders over a receiver's cap in a run: how many, by
    owner and by top stage, by trigger, and the riskiest ``DIGEST_TOP`` of them with what
    changed."""
    lang = hook["lang"]
    top = [
        {
            k: v
            for k, v in event_payload(hook, run, row, key, config).items()
            if k in DIGEST_ORDER_FIELDS
        }
        for row in overflow.head(DIGEST_TOP).to_dict("records")
    ]
    owners = [
        None if (o := owner_of(s, config.stage_owners)) is None else o.name(lang)
        for s in overflow["top_stage"]
    ]
    triggers = [t for ts in overflow["triggers"] for t in ts]
    return {
        "event": DIGEST,
        "idempotency_key": key,
        "webhook_id": hook["webhook_id"],
        "orders": len(overflow),
        "by_owner": _counts(owners),
        "by_stage": _counts(overflow["top_stage"]),
        "changed": {"orders": len(overflow), "triggers": _counts(triggers)},
        "top_orders": top,
        "threshold": hook["threshold"],
        "model_version": run.model_version,
        "run_id": run.run_id,
        "scored_at": run.created_at.astimezone(UTC).isoformat(),
        "as_of": pd.Timestamp(run.as_of).isoformat(),
    }


DIGEST_ORDER_FIELDS = (
    "order_id",
    "event",
    "triggers",
    "risk",
    "top_stage",
    "owner",
    "plant_id",
    "customer_id",
    "due_date",
    "predicted_delivery_date",
    "changed",
)
"""What a digest says of each order it lists."""


def _counts(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        name = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def delivery_rows(
    hook,
    run: RunInfo,
    events: pd.DataFrame,
    now: datetime,
    config: WebhookConfig,
    overflow: pd.DataFrame | None = None,
) -> list[dict]:
    """The deliveries of ``events`` to ``hook``, as rows of the deliveries table: one pending
    delivery per event, then one ``digest`` for the ``overflow`` when there is one; each body
    the JSON sent byte for byte (so every retry carries the same signature)."""
    out = []
    for row in events.to_dict("records"):
        order_id = str(row["order_id"])
        key = idempotency_key(hook["webhook_id"], run.run_id, order_id, row["event"])
        body = event_payload(hook, run, row, key, config)
        out.append(_delivery(hook, run, key, row["event"], order_id, body, now))
    if overflow is not None and len(overflow):
        key = idempotency_key(hook["webhook_id"], run.run_id, DIGEST_ORDER_ID, DIGEST)
        body = digest_payload(hook, run, overflow, key, config)
        out.append(_delivery(hook, run, key, DIGEST, DIGEST_ORDER_ID, body, now))
    return out


DIGEST_ORDER_ID = "*"
"""The ``order_id`` of a digest's delivery (it is about many orders)."""


def _delivery(hook, run: RunInfo, key: str, event: str, order_id: str, body: dict, now) -> dict:
    return {
        "webhook_id": hook["webhook_id"],
        "idempotency_key": key,
        "event": event,
        "run_id": run.run_id,
        "order_id": order_id,
        "body": json.dumps(
            body,
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,  # a NaN would be invalid JSON for the receiver: a bug, not a body
        ),
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


def told_rows(hook, run: RunInfo, events: pd.DataFrame, now: datetime) -> list[dict]:
    """What ``hook`` is told of each order of ``events`` (sent or in its digest): the rows of
    ``webhook_order_state`` its next events are compared with."""
    out = []
    for row in events.to_dict("records"):
        due = row.get("due_date")
        delivery = row.get("predicted_delivery_date")
        out.append(
            {
                "webhook_id": hook["webhook_id"],
                "order_id": str(row["order_id"]),
                "run_id": run.run_id,
                "event": row["event"],
                "risk": float(row["risk"]),
                "top_stage": _text(row.get("top_stage")),
                "predicted_days_late": _number(row.get("predicted_days_late")),
                "predicted_delivery_date": delivery if isinstance(delivery, str) else None,
                "due_date": None if pd.isna(due) else pd.Timestamp(due).strftime("%Y-%m-%d"),
                "reasons": json.dumps(_reasons(row, hook["lang"]), ensure_ascii=False),
                "sent_at": now,
            }
        )
    return out


def _rounded(value: object) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)  # type: ignore[arg-type]


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _number(value: SupportsFloat | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
