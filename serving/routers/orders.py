"""The ranked list of the latest scoring run, and one order's full explanation, each with the
delivery forecast."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query, Response

from data.contract import EXPLANATION_STAGES
from serving.columns import STAGE_COLUMNS, reasons_in
from serving.deps import READER, LangDep, ModelDep, RunDep, StateDep
from serving.errors import ApiError
from serving.lookup import find_orders
from serving.schemas import (
    AsOf,
    AtRiskOrder,
    AtRiskPage,
    ErrorResponse,
    FeatureContribution,
    OrderExplanation,
    RunOut,
    Stage,
    forecast_records,
    json_response,
)

router = APIRouter(
    prefix="/v1/orders",
    tags=["orders"],
    dependencies=READER,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)


def filter_ranked(
    rows: pd.DataFrame,
    *,
    plant: str | None = None,
    customer: str | None = None,
    due_after: date | None = None,
    due_before: date | None = None,
    min_risk: float | None = None,
    stage: str | None = None,
    past_due: bool | None = None,
    min_days_late: float | None = None,
) -> pd.DataFrame:
    """The ranked rows matching every given filter, still in rank order. The due window is
    half-open, ``due_after <= due_date < due_before``, so consecutive windows (a week, then the
    next) never share an order; an order without a due date is outside any window. ``past_due``:
    only the orders whose due date is over (True) or only the others (False); ``min_days_late``:
    a predicted delivery at least that many days after the end of the due date (an order
    without a forecast never matches)."""
    mask = np.ones(len(rows), dtype=bool)
    if plant is not None:
        mask &= (rows["plant_id"] == plant).to_numpy()
    if customer is not None:
        mask &= (rows["customer_id"] == customer).to_numpy()
    if due_after is not None:
        mask &= (rows["due_date"] >= pd.Timestamp(due_after)).to_numpy()
    if due_before is not None:
        mask &= (rows["due_date"] < pd.Timestamp(due_before)).to_numpy()
    if min_risk is not None:
        mask &= (rows["risk"] >= min_risk).to_numpy()
    if stage is not None:
        mask &= (rows["top_stage"] == stage).to_numpy()
    if past_due is not None:
        mask &= is_past_due(rows) == past_due
    if min_days_late is not None:
        mask &= (rows["predicted_days_late"] >= min_days_late).to_numpy()
    # No filter: no copy of the whole run (100,000 rows) for one page.
    return rows if mask.all() else rows[mask]


def is_past_due(rows: pd.DataFrame) -> np.ndarray:
    """Whether each ranked row's due date is over at the run's as_of: ``past_due_days > 0``;
    for runs without a forecast (``past_due_days`` empty), due before the as_of's date
    (``days_to_due < 0``, the same orders)."""
    days = rows["past_due_days"].to_numpy(dtype=np.float64, na_value=np.nan)
    before = (rows["days_to_due"] < 0).fillna(False).to_numpy(dtype=bool)
    return np.where(np.isnan(days), before, days > 0)


DUE_WINDOW = (
    "The due window is half-open: `due_after` is inclusive (due on or after that date), "
    "`due_before` is exclusive (due strictly before it), so `due_after=2025-03-01&"
    "due_before=2025-03-08` is the week from 1 March to 7 March and the next week starts at "
    "`due_after=2025-03-08`. Dates are the plant's local calendar dates (YYYY-MM-DD)."
)
DueAfter = Annotated[date | None, Query(description="Due on or after this date (inclusive).")]
DueBefore = Annotated[date | None, Query(description="Due strictly before this date (exclusive).")]


@dataclass(frozen=True)
class AtRiskFilter:
    """The filters of the at-risk list, shared by the list and its export (one dependency, so
    the two can never filter differently)."""

    plant: str | None = None
    customer: str | None = None
    due_after: date | None = None
    due_before: date | None = None
    min_risk: float | None = None
    stage: str | None = None
    past_due: bool | None = None
    min_days_late: float | None = None

    def apply(self, rows: pd.DataFrame) -> pd.DataFrame:
        return filter_ranked(rows, **asdict(self))


async def at_risk_filter(
    plant: Annotated[str | None, Query(description="Only this plant_id.")] = None,
    customer: Annotated[str | None, Query(description="Only this customer_id.")] = None,
    due_after: DueAfter = None,
    due_before: DueBefore = None,
    min_risk: Annotated[float | None, Query(ge=0, le=1, description="Risk at least this.")] = None,
    stage: Annotated[Stage | None, Query(description="Only orders with this top stage.")] = None,
    past_due: Annotated[
        bool | None,
        Query(
            description="true: only orders whose due date is over at the run's as_of "
            "(`past_due_days` > 0); false: only the others."
        ),
    ] = None,
    min_days_late: Annotated[
        float | None,
        Query(
            allow_inf_nan=False,
            description="Only orders predicted at least this many days late "
            "(`predicted_days_late`, in days after the end of the due date; negative: early "
            "by at most that much). Orders without a forecast never match.",
        ),
    ] = None,
) -> AtRiskFilter:
    # async: building the dataclass needs no thread-pool hop.
    return AtRiskFilter(
        plant, customer, due_after, due_before, min_risk, stage, past_due, min_days_late
    )


FilterDep = Annotated[AtRiskFilter, Depends(at_risk_filter)]


@router.get(
    "/at-risk",
    response_model=AtRiskPage,
    summary="The latest scoring run's ranked list, filtered and paginated",
    description="Every filter given must hold; rows stay in rank order (1 = most likely "
    "late: orders past their due date plus the grace days first, the latest expected first). "
    "Reasons come in the request's language (`lang`, else `Accept-Language`, else the "
    "server's default). Each row carries the delivery forecast (null for a run of a model "
    "without one). " + DUE_WINDOW,
)
def at_risk(
    run: RunDep,
    lang: LangDep,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    matched = filters.apply(run.rows)
    page = matched.iloc[offset : offset + limit]
    info = run.info
    body = AtRiskPage(
        model_version=info.model_version,
        run=RunOut(
            run_id=info.run_id,
            created_at=info.created_at,
            as_of=info.as_of,
            model_version=info.model_version,
            data_fingerprint=info.data_fingerprint,
            n_scored=info.n_scored,
        ),
        total=len(matched),
        limit=limit,
        offset=offset,
        items=_items(page, lang),
    )
    return json_response(body)


def _items(page: pd.DataFrame, lang: str) -> list[AtRiskOrder]:
    stages = page[list(STAGE_COLUMNS)].to_numpy()
    said = reasons_in(page, lang).tolist()
    keep = ["order_id", "rank", "risk", "top_stage", "plant_id", "customer_id", "due_date"]
    records = page[[*keep, "days_to_due"]].to_dict("records")
    forecasts = forecast_records(page, len(page))
    items = []
    for rec, row, reasons, forecast in zip(records, stages, said, forecasts, strict=True):
        due = rec["due_date"]
        items.append(
            AtRiskOrder(
                order_id=rec["order_id"],
                rank=int(rec["rank"]),
                risk=float(rec["risk"]),
                top_stage=rec["top_stage"],
                stage_contributions=dict(zip(EXPLANATION_STAGES, map(float, row), strict=True)),
                reasons=list(reasons),
                plant_id=_text(rec["plant_id"]),
                customer_id=_text(rec["customer_id"]),
                due_date=None if pd.isna(due) else pd.Timestamp(due).date(),
                days_to_due=None if pd.isna(rec["days_to_due"]) else int(rec["days_to_due"]),
                **forecast,
            )
        )
    return items


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


@router.get(
    "/{order_id}/risk",
    response_model=OrderExplanation,
    summary="One order's full explanation (every feature's contribution) and delivery forecast",
    description="An order delivered or cancelled at or before `as_of`: its `status` and "
    "`closed_at`, no risk, no explanation and no forecast (as in `POST /v1/risk`). The forecast "
    "(`predicted_days_late` with its 80% and 95% intervals, in days after the end of the due "
    "date; `predicted_delivery_date`; `past_due_days`; `stage_days`) is null for a model "
    "trained without one.",
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def order_risk(
    order_id: str,
    model: ModelDep,
    state: StateDep,
    lang: LangDep,
    as_of: Annotated[
        AsOf | None, Query(description="Default: the dataset's snapshot; 1900-01-01 to 2199-12-31.")
    ] = None,
) -> Response:
    data = state.data
    if data is None:
        raise ApiError(
            409,
            "no_dataset",
            "no dataset is configured (set OTD_RISK_DATA and "
            "restart); the latest run's row is at GET /v1/orders/at-risk",
        )
    rm = model.risk_model
    found = find_orders(data, rm, [order_id], as_of)
    t = found.as_of
    meta = data.dataset.orders.iloc[data.order_ids[order_id]]
    today = pd.Timestamp(t).tz_convert(data.dataset.tz).tz_localize(None).normalize()
    about = {
        "model_version": model.version,
        "order_id": order_id,
        "as_of": t,
        "plant_id": _text(meta["plant_id"]),
        "customer_id": _text(meta["customer_id"]),
        "due_date": meta["due_date"].date(),
        "days_to_due": int((meta["due_date"] - today).days),
    }
    if found.rows is None:  # delivered or cancelled by then: its status, nothing scored
        closed = found.closed[0]
        return json_response(
            OrderExplanation(
                **about,
                risk=None,
                top_stage=None,
                stage_contributions={},
                base_value=None,
                reasons=[],
                features=[],
                status=closed.status,
                closed_at=closed.at.to_pydatetime(),
            )
        )
    rows = found.rows
    explained = model.explainer.explain(
        rows, lang=lang, expected_slips=data.expected_slips, num_threads=1
    )
    contrib = explained.contributions
    specs = {s.name: s for s in rm.feature_specs}
    values = contrib.values[0]
    order = np.argsort(-np.abs(values), kind="stable")
    feats = [
        FeatureContribution(
            name=rm.feature_names[j],
            stage=rm.stage_map.get(rm.feature_names[j], "order"),
            value=_value(rows[rm.feature_names[j]][0]),
            contribution=float(values[j]),
            description=spec.description if (spec := specs.get(rm.feature_names[j])) else "",
        )
        for j in order
    ]
    body = OrderExplanation(
        **about,
        risk=float(explained.risk[0]),
        top_stage=explained.top_stage[0],
        stage_contributions={
            s: float(v) for s, v in zip(EXPLANATION_STAGES, explained.stages[0], strict=True)
        },
        base_value=float(contrib.base[0]),
        reasons=list(explained.reasons[lang][0]),
        features=feats,
        **forecast_records(explained.forecast_columns(), 1)[0],
    )
    return json_response(body)


def _value(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
