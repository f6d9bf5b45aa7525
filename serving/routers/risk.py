"""``POST /v1/risk``: score and explain 1 to 10,000 orders, by id or by feature values, with
their delivery forecast.

Orders by id that are delivered or cancelled at the as_of are answered with their status, not
scored (``serving.lookup``). Orders by feature values: a numeric feature must be a number (or a
number as text, e.g. ``"12.5"``; empty text and null are unknown) else 422 naming the order and
the feature; a category the model never saw is scored as unknown and said in ``warnings``; the
forecast is made from the values sent, its delivery date from ``due_date`` (or
``context.ctx_due_date``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request, Response

from serving.deps import READER, ModelDep, SettingsDep, StateDep, get_data
from serving.errors import ApiError
from serving.explain import Explanations
from serving.lookup import Closed, find_orders
from serving.rows import Rows
from serving.schemas import (
    MAX_BATCH,
    TIME_RANGE,
    ErrorResponse,
    RiskRequest,
    RiskResponse,
    RiskResult,
    date_in_range,
    json_response,
    risk_results,
)

router = APIRouter(
    prefix="/v1",
    tags=["risk"],
    dependencies=READER,
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
    summary="Risk, top stage, stage contributions, reasons and delivery forecast for 1 to 10,000 "
    "orders",
    description=f"Each order is given by `order_id` (looked up in the configured dataset as of "
    f"`as_of`, default its snapshot time) or by its `features`. More than {MAX_BATCH:,} orders: "
    "422. An unknown id: 404 naming it. An order delivered or cancelled by the as_of: its "
    "`status` and `closed_at`, no risk and no forecast. A feature value that is not a number "
    "where the model expects one: 422 naming the order and the feature; an unseen category: "
    "scored as unknown, said in the order's `warnings`. The forecast (`predicted_days_late` "
    "with its 80% and 95% intervals, in days after the end of the due date; "
    "`predicted_delivery_date`; `past_due_days`; `stage_days`) is null for a model trained "
    "without one; for an order sent by `features` its delivery date needs `due_date` (or "
    "`context.ctx_due_date`).",
)
def score_orders(
    body: RiskRequest,
    model: ModelDep,
    state: StateDep,
    settings: SettingsDep,
    request: Request,
) -> Response:
    rm = model.risk_model
    lang = body.lang or settings.default_lang
    answered_now = _from_answers(body, state, model, lang)
    if answered_now is not None:
        request.app.state.metrics.orders_scored.inc(len(body.orders))
        return Response(answered_now, media_type="application/json")
    batch = _batch(body, state, rm)
    results: list[RiskResult | None] = [None] * len(body.orders)
    if batch.rows is not None:
        data = state.data
        explained = model.explainer.explain(
            batch.rows,
            lang=lang,
            num_threads=1 if batch.rows.n < 256 else 2,
            expected_slips=None if data is None else data.expected_slips,
        )
        request.app.state.metrics.orders_scored.inc(batch.rows.n)
        for pos, result in zip(batch.scored, _results(batch, explained, lang), strict=True):
            results[pos] = result
    for pos, (order_id, closed) in batch.closed.items():
        results[pos] = _closed_result(order_id, closed)
    answered = [r for r in results if r is not None]
    assert len(answered) == len(results), "every order of the request has its result"
    return json_response(
        RiskResponse(model_version=model.version, as_of=batch.as_of, results=answered)
    )


def _from_answers(body: RiskRequest, state, model, lang: str) -> bytes | None:
    """The response from the answers made in one batch (``serving.answers``) when every order
    is asked for by id at the snapshot time and open then, and the batch is made for the
    served model and snapshot; else None (the request is scored the ordinary way)."""
    data = state.data
    if body.as_of is not None or data is None:
        return None
    answers = state.answers.get(model, data)
    if answers is None:
        return None
    positions = []
    for order in body.orders:
        position = None if order.features is not None else data.open_positions.get(order.order_id)
        if position is None:
            return None
        positions.append(position)
    return answers.response(positions, lang, model.version, data.as_of)


@dataclass
class _Batch:
    """A request's orders ready to score: the rows of those scored (``scored``: their positions
    in the request, ascending), the orders closed at the as_of, and warnings by position."""

    rows: Rows | None
    scored: list[int]
    ids: list
    closed: dict[int, tuple[str, Closed]] = field(default_factory=dict)
    warnings: dict[int, list[str]] = field(default_factory=dict)
    as_of: pd.Timestamp | None = None


def _batch(body: RiskRequest, state, rm) -> _Batch:
    by_id = [i for i, o in enumerate(body.orders) if o.features is None]
    by_value = [i for i, o in enumerate(body.orders) if o.features is not None]
    if not by_value:
        # The common call (orders by id, open at the snapshot): no frame is built.
        ids = [_looked_up_id(o) for o in body.orders]
        found = find_orders(get_data(state), rm, ids, body.as_of)
        closed = {k: (ids[k], c) for k, c in found.closed.items()}
        open_ids = [ids[k] for k in found.open_at]
        return _Batch(found.rows, found.open_at, open_ids, closed, as_of=found.as_of)
    given, warnings = _columns_from_values(rm, [body.orders[i] for i in by_value], by_value)
    if not by_id:
        # Orders sent with their feature values: their columns are the rows, no frame built.
        rows = Rows.from_columns(given)
        return _Batch(rows, by_value, given["order_id"].tolist(), warnings=warnings)
    ids = [_looked_up_id(body.orders[i]) for i in by_id]
    found = find_orders(get_data(state), rm, ids, body.as_of)
    closed = {by_id[k]: (ids[k], c) for k, c in found.closed.items()}
    open_by_id = [by_id[k] for k in found.open_at]
    parts = [pd.DataFrame(given)]
    if found.rows is not None:
        looked_up = found.rows.to_frame().rename_axis("order_id").reset_index()
        parts.insert(0, looked_up)
    frame = pd.concat(parts, ignore_index=True)
    # Results come back in request order whichever way each order was given.
    positions = np.asarray(open_by_id + by_value)
    order = np.argsort(positions, kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    return _Batch(
        Rows(frame),
        positions[order].tolist(),
        frame["order_id"].tolist(),
        closed,
        warnings,
        found.as_of,
    )


def _looked_up_id(order) -> str:
    """The id of an order sent without its features (the request model requires one then)."""
    assert order.order_id is not None, "RiskOrder requires order_id when features are absent"
    return order.order_id


def _columns_from_values(rm, orders, positions) -> tuple[dict[str, np.ndarray], dict]:
    """The orders' values as columns, as a frame of them would hold them (numbers as float64,
    categories as text, context as sent), and the warnings per request position. A value that
    is not a number for a numeric feature: 422 naming the order and the feature."""
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
    warnings: dict[int, list[str]] = {}
    problems: list[str] = []
    for name in rm.feature_names:
        values = [o.features[name] for o in orders]
        levels = rm.categorical_levels.get(name)
        if levels is not None:
            columns[name] = _categories(name, values, levels, positions, warnings)
        elif all(v is None or type(v) is float for v in values):
            # The request's numbers are floats already (pydantic): no per-value parsing.
            columns[name] = np.array([np.nan if v is None else v for v in values], np.float64)
        else:
            columns[name] = _numbers(name, values, orders, positions, problems)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ApiError(
            422,
            "invalid_request",
            "; ".join(problems[:5]) + more + '. Send a number, a number as text ("12.5"), '
            "or null for an unknown value",
        )
    context = sorted({k for o in orders for k in o.context})
    for key in context:
        columns[key] = pd.Series([o.context.get(key) for o in orders]).to_numpy()
    columns["ctx_due_date"] = _due_dates(orders, positions, warnings)
    return columns, warnings


def _due_dates(orders, positions, warnings: dict[int, list[str]]) -> np.ndarray:
    """Each order's due date as ``YYYY-MM-DD`` text (what a looked-up order's ``ctx_due_date``
    holds), from ``due_date`` else ``context.ctx_due_date``; None when neither says. Context is
    free text: one that is not a date is said in the order's warnings, not refused."""
    out = np.full(len(orders), None, dtype=object)
    for k, order in enumerate(orders):
        if order.due_date is not None:
            out[k] = order.due_date.isoformat()
            continue
        text = order.context.get("ctx_due_date")
        if text is None or not text.strip():
            continue
        try:
            out[k] = date_in_range(date.fromisoformat(text.strip())).isoformat()
        except ValueError:
            warnings.setdefault(positions[k], []).append(
                f"context.ctx_due_date: {text!r} is not a date {TIME_RANGE} (YYYY-MM-DD); "
                "predicted_delivery_date is null (send `due_date`)"
            )
    return out


def _numbers(name, values, orders, positions, problems: list[str]) -> np.ndarray:
    """A numeric feature's values as float64: numbers, numbers as text, null or empty text
    (unknown); anything else is a problem for the caller (named in ``problems``)."""
    out = np.empty(len(values), np.float64)
    for k, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            out[k] = np.nan
            continue
        try:
            out[k] = float(value)
        except ValueError:
            label = f" (order {orders[k].order_id!r})" if orders[k].order_id else ""
            problems.append(
                f"body.orders.{positions[k]}.features.{name}: {value!r} is not a number{label}"
            )
    return out


def _categories(name, values, levels, positions, warnings: dict[int, list[str]]) -> np.ndarray:
    """A categorical feature's values as text (a number as its text: 12 -> "12"); a category
    the model never saw is scored as unknown and said in the order's warnings."""
    known = set(levels)
    out = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        if isinstance(value, float):
            value = None if math.isnan(value) else _number_text(value)
        elif isinstance(value, str) and not value.strip():
            value = None
        out[k] = value
        if value is not None and value not in known:
            shown = ", ".join(repr(v) for v in levels[:5]) + (", ..." if len(levels) > 5 else "")
            warnings.setdefault(positions[k], []).append(
                f"{name}: {value!r} is a category the model has not seen (it knows {shown}); "
                "scored as an unknown one"
            )
    return out


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _results(batch: _Batch, explained: Explanations, lang: str) -> list[RiskResult]:
    assert batch.rows is not None, "only a batch with rows to score is explained"
    warnings = [batch.warnings.get(pos, []) for pos in batch.scored]
    return risk_results(batch.ids, explained, lang, warnings)


def _closed_result(order_id: str, closed: Closed) -> RiskResult:
    return RiskResult(
        order_id=order_id,
        risk=None,
        top_stage=None,
        stage_contributions={},
        reasons=[],
        status=closed.status,
        closed_at=closed.at.to_pydatetime(),
    )
