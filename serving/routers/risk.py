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
    frames: list[pd.DataFrame] = []
    positions: list[int] = []
    as_of = None
    if by_id:
        ids = [body.orders[i].order_id for i in by_id]
        features, as_of = features_for_ids(get_data(state), rm, ids, body.as_of)
        frames.append(features.reset_index())
        positions += by_id
    frames.append(_frame_from_values(rm, [body.orders[i] for i in by_value], by_value))
    positions += by_value
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # Results come back in request order whichever way each order was given.
    order = np.argsort(np.asarray(positions), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    return Rows(frame), frame["order_id"].tolist(), as_of


def _frame_from_values(rm, orders, positions) -> pd.DataFrame:
    known = set(rm.feature_names)
    rows = []
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
        rows.append({"order_id": order.order_id, **order.features, **order.context})
    frame = pd.DataFrame(rows)
    for name in rm.feature_names:
        if name not in rm.categorical_levels:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


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
