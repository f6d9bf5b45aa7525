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
from datetime import UTC, datetime
from typing import Any, SupportsFloat

import numpy as np
import pandas as pd

from serving.columns import FORECAST_COLUMNS, reasons_column
from serving.runs import RunInfo
from serving.schemas import forecast_records
from serving.webhooks.config import WebhookConfig

EVENTS: tuple[str, ...] = ("threshold_crossed", "risk_rose", "forecast_late", "forecast_moved")


def idempotency_key(webhook_id: str, run_id: str, order_id: str, event: str) -> str:
    """Stable per (webhook, run, order, event): re-enqueueing a run cannot create a duplicate."""
    raw = f"{webhook_id}\x1f{run_id}\x1f{order_id}\x1f{event}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def find_events(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    *,
    threshold: float,
    risk_step: float,
    forecast_step_days: float = WebhookConfig.forecast_step_days,
    plant_id: str | None = None,
    customer_id: str | None = None,
) -> pd.DataFrame:
    """Events between two runs' ranked rows: the current rows plus ``event``, ``previous_risk``,
    ``previous_predicted_days_late`` and ``previous_predicted_delivery_date``, one row per
    (order, event); an order can have several events. Forecast events need a forecast in both
    runs: a run without one (NaN ``predicted_days_late``) has none."""
    rows = current
    if plant_id is not None:
        rows = rows[rows["plant_id"] == plant_id]
    if customer_id is not None:
        rows = rows[rows["customer_id"] == customer_id]
    before = _previous(rows, previous)
    risk = rows["risk"]
    prev_risk = before["risk"]
    late_now = _column(rows, "predicted_days_late")
    late_before = before["predicted_days_late"]
    moved = (_delivery_day(rows) - _delivery_day(before)).abs()
    events = {
        "threshold_crossed": (risk >= threshold) & (prev_risk.isna() | (prev_risk < threshold)),
        "risk_rose": prev_risk.notna() & ((risk - prev_risk) > risk_step),
        # NaN compares false: without a forecast in either run, no forecast event.
        "forecast_late": (late_now > 0) & (late_before <= 0),
        "forecast_moved": moved >= forecast_step_days,
    }
    parts = []
    for name, mask in events.items():
        part = rows.loc[mask].assign(
            event=name,
            previous_risk=prev_risk[mask],
            previous_predicted_days_late=late_before[mask],
            previous_predicted_delivery_date=before["predicted_delivery_date"][mask],
        )
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["risk", "event"], ascending=[False, True], kind="stable")


def _previous(rows: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """The previous run's risk, forecast and due date of each of ``rows``' orders (NaN where the
    previous run did not have the order), indexed like ``rows``."""
    names = ["risk", "predicted_days_late", "predicted_delivery_date", "due_date"]
    if previous is None or not len(previous):
        return pd.DataFrame({c: np.nan for c in names}, index=rows.index)
    prev = previous.drop_duplicates("order_id").set_index("order_id")
    ids = rows["order_id"]
    return pd.DataFrame({c: ids.map(_column(prev, c)) for c in names}, index=rows.index)


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
    days late and delivery date."""
    from serving.i18n import stage_name

    due = row.get("due_date")
    # A run recorded before reasons were stored per language has only its own ``reasons``.
    said = row.get(reasons_column(hook["lang"]))
    forecast = forecast_records({c: [row.get(c)] for c in FORECAST_COLUMNS}, 1)[0]
    before = row.get("previous_predicted_delivery_date")
    return {
        "event": row["event"],
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
        "reasons": list(said if isinstance(said, list | tuple) else row["reasons"]),
        "plant_id": _text(row.get("plant_id")),
        "customer_id": _text(row.get("customer_id")),
        "due_date": None if pd.isna(due) else pd.Timestamp(due).strftime("%Y-%m-%d"),
        **forecast,
        "previous_predicted_days_late": _number(row.get("previous_predicted_days_late")),
        "previous_predicted_delivery_date": before if isinstance(before, str) else None,
        "forecast_step_days": (config or WebhookConfig()).forecast_step_days,
        "model_version": run.model_version,
        "run_id": run.run_id,
        "scored_at": run.created_at.astimezone(UTC).isoformat(),
        "as_of": pd.Timestamp(run.as_of).isoformat(),
    }


def delivery_rows(
    hook, run: RunInfo, events: pd.DataFrame, now: datetime, config: WebhookConfig
) -> list[dict]:
    """The deliveries of ``events`` to ``hook``, as rows of the deliveries table: one pending
    delivery per event, its body the JSON sent byte for byte (so every retry carries the same
    signature)."""
    out = []
    for row in events.to_dict("records"):
        key = idempotency_key(hook["webhook_id"], run.run_id, str(row["order_id"]), row["event"])
        body = json.dumps(
            event_payload(hook, run, row, key, config),
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,  # a NaN would be invalid JSON for the receiver: a bug, not a body
        )
        out.append(
            {
                "webhook_id": hook["webhook_id"],
                "idempotency_key": key,
                "event": row["event"],
                "run_id": run.run_id,
                "order_id": str(row["order_id"]),
                "body": body,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    return out


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _number(value: SupportsFloat | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
