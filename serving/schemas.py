"""Request and response bodies of the API (separate models for what comes in and goes out).

Stage contributions are in log-odds of lateness (see ``serving.explain``); the delivery forecast
(``ForecastOut``) is in days; every response carries the ``model_version`` that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from data.contract import EXPLANATION_STAGES, STAGES
from serving.acks import AckOut
from serving.columns import FORECAST_COLUMNS, STAGE_DAYS_COLUMNS, STAGE_DAYS_IF_LATE_COLUMNS
from serving.i18n import Lang

MAX_BATCH = 10_000
"""Most orders one ``POST /v1/risk`` may carry."""

Stage = Literal[EXPLANATION_STAGES]  # type: ignore[valid-type]

OrderStatus = Literal["open", "delivered", "cancelled"]

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)
TIME_RANGE = f"from {EARLIEST} to {LATEST}"
"""The as_of times the API accepts. Features are built on pandas' nanosecond timestamps
(1677-2262): beyond, building them failed (9999-12-31 was a 500), and they look a year back from
an as_of; any real order falls well inside. (Due-date filters take any date: they are only
compared, which pandas does at any resolution.)"""


def _time_in_range(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not datetime.combine(EARLIEST, datetime.min.time(), UTC) <= aware:
        raise ValueError(f"{value.isoformat()} is out of range: give a time {TIME_RANGE}")
    if not aware < datetime.combine(LATEST, datetime.max.time(), UTC):
        raise ValueError(f"{value.isoformat()} is out of range: give a time {TIME_RANGE}")
    return value


AsOf = Annotated[datetime, AfterValidator(_time_in_range)]
"""A point in time the API accepts (ISO 8601; 1900-01-01 to 2199-12-31), else 422."""


def date_in_range(value: date) -> date:
    """``value`` if it lies from ``EARLIEST`` to ``LATEST``, else ``ValueError`` saying so."""
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"{value.isoformat()} is out of range: give a date {TIME_RANGE}")
    return value


DueDate = Annotated[date, AfterValidator(date_in_range)]
"""A due date the API computes with (YYYY-MM-DD; 1900-01-01 to 2199-12-31), else 422: the
delivery date is reckoned on nanosecond timestamps, like ``AsOf``."""

STAGE_UNIT = (
    "Each stage's share of the model's raw score in log-odds of lateness (TreeSHAP values of "
    "the stage's features, summed); positive pushes towards late."
)


DAYS_LATE_UNIT = "in days after the end of the due date (> 0: late, < 0: early)"

TOP_STAGE_TEXT = (
    "Where the delay will come from: the stage that adds the most days beyond its plan if the "
    "order is late (the largest of `stage_days_if_late`); for a model without a forecast, the "
    "stage with the largest own slip observed or expected, else the largest contribution."
)


class ForecastOut(BaseModel):
    """The delivery forecast of one open order (``training.forecast``; the run's
    ``FORECAST_COLUMNS``). Null, and ``stage_days`` empty, for a model trained without a forecast
    and for an order that is not open."""

    predicted_days_late: float | None = Field(
        default=None,
        description=f"Predicted delivery {DAYS_LATE_UNIT}: delivery minus the end of the due date.",
    )
    days_late_p10: float | None = Field(
        default=None, description=f"Low end of the 80% interval of the days late, {DAYS_LATE_UNIT}."
    )
    days_late_p90: float | None = Field(
        default=None,
        description=f"High end of the 80% interval of the days late, {DAYS_LATE_UNIT}.",
    )
    days_late_p025: float | None = Field(
        default=None, description=f"Low end of the 95% interval of the days late, {DAYS_LATE_UNIT}."
    )
    days_late_p975: float | None = Field(
        default=None,
        description=f"High end of the 95% interval of the days late, {DAYS_LATE_UNIT}.",
    )
    predicted_delivery_date: date | None = Field(
        default=None,
        description="The calendar date `predicted_days_late` days after the end of the due date "
        "(YYYY-MM-DD); null where the due date is unknown (an order sent by `features` without "
        "`due_date`).",
    )
    past_due_days: float | None = Field(
        default=None,
        description="Days since the due date ended (0 when it has not). An order past its due "
        "date plus the grace days is late whatever it scores: its `risk` is 1.",
    )
    stage_days: dict[str, float] = Field(
        default_factory=dict,
        description="Days each process stage adds beyond its plan, by stage (observed for "
        "completed stages, forecast for the others; negative = ahead of plan); only the stages "
        "the order has.",
    )
    stage_days_if_late: dict[str, float] = Field(
        default_factory=dict,
        description="Days each process stage adds beyond its plan if the order ends up late "
        "(the forecast's outcomes in which it is late, averaged; observed for completed "
        "stages): `top_stage` is the largest. It can differ from the largest of `stage_days`: "
        "a stage that rarely slips but then by days (shipping in winter) is the likelier "
        "cause of a late delivery than one certain to add a little. Empty for runs recorded "
        "before it.",
    )


def forecast_records(columns: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """Per row, the ``ForecastOut`` fields from the ``FORECAST_COLUMNS`` of ``n`` rows (a run's
    frame, or ``serving.explain.forecast_columns``'s arrays): a column that is absent or NaN is
    null, a stage without days is left out of ``stage_days``."""
    if n == 0:
        return []
    dates = columns.get("predicted_delivery_date")
    dates = [None] * n if dates is None else np.asarray(dates, dtype=object).tolist()
    # In ForecastOut's order (a webhook's body is a dict): the scalars, then stage_days.
    scalars = {
        c: [d if isinstance(d, str) else None for d in dates]
        if c == "predicted_delivery_date"
        else _floats(columns.get(c), n)
        for c in FORECAST_COLUMNS
        if c not in STAGE_DAYS_COLUMNS and c not in STAGE_DAYS_IF_LATE_COLUMNS
    }
    stage_days = [_floats(columns.get(c), n) for c in STAGE_DAYS_COLUMNS]
    if_late = [_floats(columns.get(c), n) for c in STAGE_DAYS_IF_LATE_COLUMNS]
    out = []
    for i in range(n):
        row: dict[str, Any] = {c: v[i] for c, v in scalars.items()}
        row["stage_days"] = {
            s: d[i] for s, d in zip(STAGES, stage_days, strict=True) if d[i] is not None
        }
        row["stage_days_if_late"] = {
            s: d[i] for s, d in zip(STAGES, if_late, strict=True) if d[i] is not None
        }
        out.append(row)
    return out


def _floats(column: Any, n: int) -> list[float | None]:
    """A column's values as floats, NaN (and None) as None."""
    if column is None:
        return [None] * n
    return [None if math.isnan(v) else v for v in np.asarray(column, dtype=np.float64).tolist()]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `unknown_order`.")
    message: str = Field(description="What went wrong and how to fix it, for people.")
    details: list[dict] | None = Field(default=None, description="Per-field problems (422).")


class ErrorResponse(BaseModel):
    """The one shape of every error the API returns."""

    error: ErrorBody


def json_response(body: BaseModel) -> Response:
    """``body`` as JSON, serialised on the calling thread. A plain ``def`` route that returns the
    model itself has FastAPI validate it again and serialise it in a second thread-pool hop; the
    per-order routes return this instead (the same bytes: pydantic's JSON of the model, which
    the route's ``response_model`` still documents)."""
    return Response(body.model_dump_json(by_alias=True), media_type="application/json")


# -- POST /v1/risk ---------------------------------------------------------------------------
class RiskOrderIn(BaseModel):
    """One order to score: by ``order_id`` (looked up in the configured dataset) or by its
    feature values (``features``; ``order_id`` is then only a label)."""

    model_config = ConfigDict(extra="forbid")

    order_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The order's key in the configured dataset.",
    )
    features: dict[str, float | str | None] | None = Field(
        default=None,
        description="Feature values by registry name (`GET /v1/model` lists them); send null "
        "for an unknown value. When given, the dataset is not consulted.",
    )
    context: dict[str, str | None] = Field(
        default_factory=dict,
        description="Context for the reason sentences, e.g. `ctx_plant_id`, `ctx_supplier_id`.",
    )
    due_date: DueDate | None = Field(
        default=None,
        description="With `features`: the order's due date (YYYY-MM-DD, 1900-01-01 to "
        "2199-12-31), from whose end `predicted_delivery_date` is counted (else "
        "`context.ctx_due_date`, else null). An order looked up by id has its dataset's.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> RiskOrderIn:
        if self.order_id is None and self.features is None:
            raise ValueError("give `order_id` (looked up in the dataset) or `features`")
        if self.due_date is not None and self.features is None:
            raise ValueError(
                "`due_date` goes with `features`: an order looked up by `order_id` has the "
                "dataset's due date; drop `due_date` or send the order's `features`"
            )
        return self


class RiskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[RiskOrderIn] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"1 to {MAX_BATCH:,} orders; split larger batches.",
    )
    as_of: AsOf | None = Field(
        default=None,
        description="Score orders looked up by id as known at this time (ISO 8601; without an "
        f"offset: the dataset's time zone; {TIME_RANGE}). Default: the dataset's snapshot time.",
    )
    lang: Lang | None = Field(default=None, description="Language of the reasons.")


class _RiskResultFields(BaseModel):
    order_id: str | None
    risk: float | None = Field(
        description="Calibrated probability that the order is delivered late (null for an order "
        "that is not open)."
    )
    top_stage: Stage | None = Field(description=f"{TOP_STAGE_TEXT} Null for an order not open.")
    stage_contributions: dict[str, float] = Field(description=STAGE_UNIT)
    reasons: list[str] = Field(description="Up to three sentences: what raises the risk most.")
    status: OrderStatus = Field(
        default="open",
        description="`open` (scored), or `delivered` / `cancelled` at or before the as_of (an "
        "order looked up by id; not scored).",
    )
    closed_at: datetime | None = Field(
        default=None, description="When a `delivered` or `cancelled` order was closed."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the model could not use as sent (an order given by `features`): e.g. a "
        "category it never saw, scored as an unknown one.",
    )


class RiskResult(ForecastOut, _RiskResultFields):
    """One order's answer: its risk and explanation, then its delivery forecast."""


def risk_results(
    ids: Sequence[str], explained: Any, lang: str, warnings: Sequence[list[str]] | None = None
) -> list[RiskResult]:
    """One ``RiskResult`` per row of ``explained`` (``serving.explain.Explanations``), reasons
    in ``lang``; ``warnings`` per row (none by default)."""
    forecasts = forecast_records(explained.forecast_columns(), len(ids))
    notes = warnings if warnings is not None else [[] for _ in ids]
    return [
        RiskResult(
            order_id=oid,
            risk=float(risk),
            top_stage=top,
            stage_contributions=dict(zip(EXPLANATION_STAGES, map(float, row), strict=True)),
            reasons=reasons,
            warnings=said,
            **forecast,
        )
        for oid, risk, top, row, reasons, said, forecast in zip(
            ids,
            explained.risk,
            explained.top_stage,
            explained.stages,
            explained.reasons[lang],
            notes,
            forecasts,
            strict=True,
        )
    ]


class RiskResponse(BaseModel):
    """One result per order, in request order. An order delivered or cancelled at or before the
    as_of is not scored: `status` says which, `closed_at` when, and `risk`, `top_stage` and the
    forecast are null, `stage_contributions`, `reasons` and `stage_days` empty."""

    model_version: str
    as_of: datetime | None = Field(description="When orders looked up by id were seen.")
    results: list[RiskResult]


# -- GET /v1/orders/at-risk ------------------------------------------------------------------
OWNER = "The department that owns the top stage (`serving.owners`), in the answer's language."
HANDLED = "Whether a planner's acknowledgement is in force (`POST /v1/orders/{order_id}/ack`)."
ACKNOWLEDGEMENT = "The order's acknowledgement not withdrawn (in force or lapsed), if any."


class _AtRiskOrderFields(BaseModel):
    order_id: str
    rank: int
    risk: float
    top_stage: Stage = Field(description=TOP_STAGE_TEXT)
    stage_contributions: dict[str, float] = Field(description=STAGE_UNIT)
    reasons: list[str]
    plant_id: str | None
    customer_id: str | None
    due_date: date | None
    days_to_due: int | None
    owner: str | None = Field(default=None, description=OWNER)
    supplier_id: str | None = Field(
        default=None,
        description="The supplier of the order's open purchase order with the worst record "
        "(null when none is open).",
    )
    handled: bool = Field(default=False, description=HANDLED)
    acknowledgement: AckOut | None = Field(default=None, description=ACKNOWLEDGEMENT)


class AtRiskOrder(ForecastOut, _AtRiskOrderFields):
    """One row of the ranked list: its risk and explanation, then its delivery forecast."""


class RunOut(BaseModel):
    run_id: str
    created_at: datetime
    as_of: datetime
    model_version: str
    data_fingerprint: str
    n_scored: int


class AtRiskPage(BaseModel):
    model_version: str = Field(description="The model version that scored this run.")
    run: RunOut
    total: int = Field(description="Orders matching the filters (before pagination).")
    limit: int
    offset: int
    items: list[AtRiskOrder]


# -- GET /v1/orders/{order_id}/risk ----------------------------------------------------------
class FeatureContribution(BaseModel):
    name: str
    stage: str
    value: float | str | None
    contribution: float = Field(description="TreeSHAP value, log-odds of lateness.")
    description: str = ""


class _OrderExplanationFields(BaseModel):
    model_version: str
    order_id: str
    as_of: datetime
    risk: float | None
    top_stage: Stage | None = Field(description=TOP_STAGE_TEXT)
    stage_contributions: dict[str, float] = Field(description=STAGE_UNIT)
    base_value: float | None = Field(
        description="The model's average raw score (log-odds); base plus "
        "all contributions is this order's raw score."
    )
    reasons: list[str]
    features: list[FeatureContribution] = Field(
        description="Every feature's value and contribution, largest effect first."
    )
    plant_id: str | None = None
    customer_id: str | None = None
    due_date: date | None = None
    days_to_due: int | None = None
    status: OrderStatus = Field(
        default="open", description="`open`, or `delivered` / `cancelled` at or before as_of."
    )
    closed_at: datetime | None = Field(
        default=None, description="When a `delivered` or `cancelled` order was closed."
    )
    owner: str | None = Field(default=None, description=OWNER)
    handled: bool = Field(default=False, description=HANDLED)
    acknowledgement: AckOut | None = Field(default=None, description=ACKNOWLEDGEMENT)


class OrderExplanation(ForecastOut, _OrderExplanationFields):
    """One order's explanation and delivery forecast. An order delivered or cancelled at or
    before the as_of is not scored: `status` says which, `closed_at` when, and `risk`,
    `top_stage`, `base_value` and the forecast are null, `stage_contributions`, `reasons`,
    `features` and `stage_days` empty."""


# -- /v1/model -------------------------------------------------------------------------------
class ModelInfo(BaseModel):
    model_version: str
    run_id: str | None
    trained_at: datetime | None = Field(description="When the version's training run started.")
    metrics: dict[str, float] = Field(
        description="Metrics logged by the training run (validation window)."
    )
    n_features: int
    n_trees: int
    features: list[str]
    loaded_at: datetime


class ReloadOut(BaseModel):
    model_version: str
    previous_version: str | None
    changed: bool


class Health(BaseModel):
    status: Literal["ok", "ready", "not_ready"]
    model_version: str | None = None
    detail: str | None = None
