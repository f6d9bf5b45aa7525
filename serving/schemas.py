"""Request and response bodies of the API (separate models for what comes in and goes out).

Stage contributions are in log-odds of lateness (see ``serving.explain``); every response
carries the ``model_version`` that produced it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from data.contract import EXPLANATION_STAGES

MAX_BATCH = 10_000
"""Most orders one ``POST /v1/risk`` may carry."""

Stage = Literal[EXPLANATION_STAGES]  # type: ignore[valid-type]
Lang = Literal["en", "zh"]

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

STAGE_UNIT = (
    "Each stage's share of the model's raw score in log-odds of lateness (TreeSHAP values of "
    "the stage's features, summed); positive pushes towards late."
)


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

    @model_validator(mode="after")
    def _one_way(self) -> RiskOrderIn:
        if self.order_id is None and self.features is None:
            raise ValueError("give `order_id` (looked up in the dataset) or `features`")
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


class RiskResult(BaseModel):
    order_id: str | None
    risk: float | None = Field(
        description="Calibrated probability that the order is delivered late (null for an order "
        "that is not open)."
    )
    top_stage: Stage | None = Field(
        description="The stage contributing most to the risk (null for an order not open)."
    )
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


class RiskResponse(BaseModel):
    """One result per order, in request order. An order delivered or cancelled at or before the
    as_of is not scored: `status` says which, `closed_at` when, and `risk`, `top_stage` are
    null, `stage_contributions` and `reasons` empty."""

    model_version: str
    as_of: datetime | None = Field(description="When orders looked up by id were seen.")
    results: list[RiskResult]


# -- GET /v1/orders/at-risk ------------------------------------------------------------------
class AtRiskOrder(BaseModel):
    order_id: str
    rank: int
    risk: float
    top_stage: Stage
    stage_contributions: dict[str, float] = Field(description=STAGE_UNIT)
    reasons: list[str]
    plant_id: str | None
    customer_id: str | None
    due_date: date | None
    days_to_due: int | None


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


class OrderExplanation(BaseModel):
    """One order's explanation. An order delivered or cancelled at or before the as_of is not
    scored: `status` says which, `closed_at` when, and `risk`, `top_stage`, `base_value` are
    null, `stage_contributions`, `reasons` and `features` empty."""

    model_version: str
    order_id: str
    as_of: datetime
    risk: float | None
    top_stage: Stage | None
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
