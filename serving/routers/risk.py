"""``POST /v1/risk``: score and explain 1 to 10,000 orders, by id or by feature values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request, Response

from data.contract import EXPLANATION_STAGES
from serving.deps import ModelDep, ReaderDep, StateDep, get_data
from serving.errors import ApiError
from serving.explain import Explanations, explain_rows
from serving.lookup import features_for_ids, rows_for_ids
from serving.rows import Rows
from serving.schemas import (
    MAX_BATCH,
    ErrorResponse,
    RiskRequest,
    RiskResponse,
    RiskResult,
    json_response,
)

router = APIRouter(
    prefix="/v1",
    tags=["risk"],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
)


@router.post(
    "/risk",
    response_model=RiskResponse,
    summary="Risk, top stage, stage contributions and reasons for 1 to 10,000 orders",
    description=f"Each order is given by `order_id` (looked up in the configured dataset as of "
    f"`as_of`, default its snapshot time) or by its `features`. More than {MAX_BATCH:,} orders: "
    "422. An unknown id: 404 naming it.",
)
def score_orders(
    body: RiskRequest, model: ModelDep, state: StateDep, request: Request, _key: ReaderDep
) -> Response:
    rm = model.risk_model
    lang = body.lang or state.settings.default_lang
    rows, order_ids, as_of = _rows(body, state, rm)
    data = state.data
    explained = explain_rows(
        rm,
        rows,
        lang=lang,
        num_threads=1 if rows.n < 256 else 2,
        expected_slips=None if data is None else data.expected_slips,
    )
    request.app.state.metrics.orders_scored.inc(rows.n)
    return json_response(
        RiskResponse(
            model_version=model.version, as_of=as_of, results=_results(order_ids, explained, lang)
        )
    )


def _rows(body: RiskRequest, state, rm) -> tuple[Rows, list, pd.Timestamp | None]:
    """The orders' feature rows in request order, their ids, and the as_of of those looked up."""
    by_id = [i for i, o in enumerate(body.orders) if o.features is None]
    by_value = [i for i, o in enumerate(body.orders) if o.features is not None]
    if not by_value:
        # The common call (orders by id, open at the snapshot): no frame is built.
        ids = [o.order_id for o in body.orders]
        rows, as_of = rows_for_ids(get_data(state), rm, ids, body.as_of)
        return rows, ids, as_of
    if not by_id:
        # Orders sent with their feature values: their columns are the rows, no frame built.
        given = _columns_from_values(rm, body.orders, by_value)
        return Rows.from_columns(given), given["order_id"].tolist(), None
    ids = [body.orders[i].order_id for i in by_id]
    features, as_of = features_for_ids(get_data(state), rm, ids, body.as_of)
    given = _columns_from_values(rm, [body.orders[i] for i in by_value], by_value)
    frame = pd.concat([features.reset_index(), pd.DataFrame(given)], ignore_index=True)
    # Results come back in request order whichever way each order was given.
    order = np.argsort(np.asarray(by_id + by_value), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    return Rows(frame), frame["order_id"].tolist(), as_of


def _columns_from_values(rm, orders, positions) -> dict[str, np.ndarray]:
    """The orders' values as columns, as a frame of them would hold them: numbers as float64
    (text that is not a number -> NaN), categories and context as pandas infers them."""
    known = set(rm.feature_names)
    for pos, order in zip(positions, orders, strict=True):
        unknown = sorted(set(order.features) - known)
        missing = [f for f in rm.feature_names if f not in order.features]
        if unknown or missing:
            what = []
            if unknown:
                what.append(f"unknown feature(s) {unknown[:5]}")
            if missing:
                what.append(
                    f"missing feature(s) {missing[:5]}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                )
            raise ApiError(
                422,
                "invalid_request",
                f"body.orders.{pos}.features: "
                f"{'; '.join(what)}; `GET /v1/model` lists the model's features "
                "(send null for an unknown value)",
            )
    columns = {"order_id": pd.Series([o.order_id for o in orders], dtype=object).to_numpy()}
    for name in rm.feature_names:
        values = [o.features[name] for o in orders]
        if name in rm.categorical_levels:
            columns[name] = pd.Series(values).to_numpy()
        elif all(v is None or type(v) is float for v in values):
            # The request's numbers are floats already (pydantic): no per-value parsing.
            columns[name] = np.array([np.nan if v is None else v for v in values], np.float64)
        else:
            columns[name] = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
            columns[name] = columns[name].to_numpy(dtype=np.float64)
    context = sorted({k for o in orders for k in o.context})
    for key in context:
        columns[key] = pd.Series([o.context.get(key) for o in orders]).to_numpy()
    return columns


def _results(order_ids: list, explained: Explanations, lang: str) -> list[RiskResult]:
    return [
        RiskResult(
            order_id=oid,
            risk=float(risk),
            top_stage=top,
            stage_contributions=dict(zip(EXPLANATION_STAGES, map(float, row), strict=True)),
            reasons=reasons,
        )
        for oid, risk, top, row, reasons in zip(
            order_ids,
            explained.risk,
            explained.top_stage,
            explained.stages,
            explained.reasons[lang],
            strict=True,
        )
    ]
