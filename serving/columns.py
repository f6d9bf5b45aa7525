"""The ranked list's columns, declared once: the scoring run, the run store, the file writers and
the API schemas derive from these names. They are a public interface: keep them."""

from __future__ import annotations

import pandas as pd

from data.contract import STAGES
from features.registry import STAGE_COLUMNS  # the stage columns, declared with the stages
from serving.i18n import LANGS

STAGE_DAYS_COLUMNS: tuple[str, ...] = tuple(f"stage_days_{s}" for s in STAGES)
"""Days each process stage adds beyond its plan: observed for completed stages, forecast for the
others, empty where the order has no such stage (``training.forecast``)."""

STAGE_DAYS_IF_LATE_COLUMNS: tuple[str, ...] = tuple(f"stage_days_if_late_{s}" for s in STAGES)
"""Days each process stage adds if the order ends up late: the forecast's outcomes in which it is
late, averaged (``training.forecast.Forecast.stage_days_if_late``; observed for completed stages).
``top_stage`` is the largest of them, and the page's bar draws them: the stage to blame if the
order is late, which is not always the one with the largest expected days (a rare, long delay
against a small certain slip)."""

FORECAST_COLUMNS: tuple[str, ...] = (
    "predicted_days_late",
    "days_late_p10",
    "days_late_p90",
    "days_late_p025",
    "days_late_p975",
    "predicted_delivery_date",
    "past_due_days",
    *STAGE_DAYS_COLUMNS,
    *STAGE_DAYS_IF_LATE_COLUMNS,
)
"""The delivery forecast of each order: days late (delivery minus the end of the due date, in
days; negative = early) with its 80% (p10..p90) and 95% (p025..p975) intervals, the delivery
date that means, how many days the due date is already behind (0 when not past due) and what
each stage adds, expected and if the order is late. Empty for models trained without a forecast."""

RANKED_COLUMNS: tuple[str, ...] = (
    "order_id",
    "rank",
    "risk",
    "top_stage",
    *STAGE_COLUMNS,
    "reasons",
    "plant_id",
    "customer_id",
    "due_date",
    "days_to_due",
    *FORECAST_COLUMNS,
    "owner",
    "supplier_id",
)
"""The columns of a scoring run's ranked list, in order (later ones appended: the forecast's,
then ``owner``, the department that owns the top stage in the run's language,
``serving.owners``, then ``supplier_id``, the supplier of the order's open purchase order with
the worst record, empty when none is open; files read by name or by position before them keep
their meaning)."""

ACK_COLUMNS: tuple[str, ...] = (
    "handled",
    "ack_owner",
    "ack_note",
    "ack_until",
    "ack_until_risk_rises_by",
    "ack_risk",
    "ack_by",
    "ack_at",
)
"""What the list's export adds after the ranked columns: whether a planner marked the order
handled (an acknowledgement in force, ``serving.acks``) and that acknowledgement."""


REASON_LANGS: tuple[str, ...] = LANGS
"""The languages a scoring run stores its reasons in: every language of ``serving.i18n``."""

TRANSLATED_REASON_COLUMNS: tuple[str, ...] = tuple(f"reasons_{lang}" for lang in REASON_LANGS)
"""The run store's reasons per language, beside ``reasons`` (the scoring run's own language):
the API answers in the reader's language without scoring again. Not part of the ranked file."""


def reasons_column(lang: str) -> str:
    """``zh`` -> ``reasons_zh``."""
    return f"reasons_{lang}"


def reasons_in(rows: pd.DataFrame, lang: str) -> pd.Series:
    """The rows' reasons in ``lang``: its stored column where the run has it, else the run's own
    ``reasons`` (runs recorded before reasons were stored per language)."""
    column = reasons_column(lang)
    if column not in rows.columns:
        return rows["reasons"]
    return rows[column].where(rows[column].notna(), rows["reasons"])
