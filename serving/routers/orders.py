"""The ranked list of the latest scoring run, and one order's full explanation, each with the
delivery forecast, its owner and its acknowledgement; planners acknowledge orders here."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Response, status

from data.contract import EXPLANATION_STAGES
from serving.acks import Ack, AckIn, AckOut, AckStore
from serving.columns import ACK_COLUMNS, STAGE_COLUMNS, reasons_in
from serving.config import ServingConfig
from serving.deps import (
    PLANNER,
    READER,
    LangDep,
    ModelDep,
    PlannerDep,
    RunDep,
    SettingsDep,
    StateDep,
    StoreDep,
)
from serving.errors import ApiError
from serving.i18n import t
from serving.lookup import find_orders
from serving.owners import StageOwner, owner_names, owner_of, stages_owned_by
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
from serving.state import RunSnapshot

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
    stages: frozenset[str] | None = None,
    supplier: str | None = None,
    handled: np.ndarray | None = None,
) -> pd.DataFrame:
    """The ranked rows matching every given filter, still in rank order. The due window is
    half-open, ``due_after <= due_date < due_before``, so consecutive windows (a week, then the
    next) never share an order; an order without a due date is outside any window. ``past_due``:
    only the orders whose due date is over (True) or only the others (False); ``min_days_late``:
    a predicted delivery at least that many days after the end of the due date (an order
    without a forecast never matches); ``stages``: only these top stages (an owner's);
    ``supplier``: only orders waiting on that supplier (``supplier_id``); ``handled``: only the
    rows where this mask is True."""
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
    if stages is not None:
        mask &= rows["top_stage"].isin(list(stages)).to_numpy()
    if supplier is not None:
        mask &= (rows["supplier_id"] == supplier).to_numpy()
    if handled is not None:
        mask &= handled
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


Handled = Literal["false", "true", "all"]


@dataclass(frozen=True)
class Worklist:
    """What the list needs beside the filters: the owner map, the acknowledgements, the
    served run and today's date (acknowledgements lapse when their date has passed)."""

    owners: Mapping[str, StageOwner]
    acks: AckStore
    run_id: str
    today: date

    def handled(self, rows: pd.DataFrame) -> np.ndarray:
        """Whether each of the served run's rows has an acknowledgement in force."""
        return self.acks.handled(self.run_id, rows, self.today)

    def annotate(self, rows: pd.DataFrame, lang: str) -> pd.DataFrame:
        """``rows`` with ``owner`` in ``lang`` and the acknowledgement's columns
        (``ACK_COLUMNS``): what the export adds to the ranked list."""
        acks = self.acks.current()
        out = rows.assign(owner=owner_names(rows["top_stage"], self.owners, lang))
        judged = [
            None if (a := acks.get(o)) is None else AckOut.judged(a, float(r), self.today)
            for o, r in zip(out["order_id"], out["risk"], strict=True)
        ]
        out["handled"] = [a is not None and a.state == "in_force" for a in judged]
        for column, name in zip(ACK_COLUMNS[1:], ACK_FIELDS, strict=True):
            out[column] = [None if a is None else getattr(a, name) for a in judged]
        out["ack_at"] = [None if v is None else v.isoformat() for v in out["ack_at"]]
        out["ack_until"] = [None if v is None else v.isoformat() for v in out["ack_until"]]
        return out


ACK_FIELDS = ("owner", "note", "until", "until_risk_rises_by", "risk", "created_by", "created_at")
"""The acknowledgement's fields behind ``ACK_COLUMNS`` after ``handled``, in order."""


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
    stages: frozenset[str] | None = None
    """The top stages of the owner asked for (``owner=``)."""
    supplier: str | None = None
    handled: Handled = "false"
    worklist: Worklist | None = field(default=None, compare=False)

    def apply(self, rows: pd.DataFrame) -> pd.DataFrame:
        # Not asdict: it deep-copies every field, the store behind the worklist too.
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name in FILTERS}
        mask = None
        if self.handled != "all" and self.worklist is not None:
            handled = self.worklist.handled(rows)
            mask = handled if self.handled == "true" else ~handled
        return filter_ranked(rows, **values, handled=mask)

    def annotate(self, rows: pd.DataFrame, lang: str) -> pd.DataFrame:
        """``rows`` with ``owner`` in ``lang`` and the acknowledgements (``Worklist``)."""
        return rows if self.worklist is None else self.worklist.annotate(rows, lang)


FILTERS = frozenset(inspect.signature(filter_ranked).parameters) - {"rows", "handled"}
"""The fields of ``AtRiskFilter`` that ``filter_ranked`` takes as they are."""


def today_in(settings: ServingConfig, now: datetime | None = None) -> date:
    """Today's date in the dataset's time zone: an acknowledgement holds through its date."""
    return (
        (now or datetime.now(ZoneInfo(settings.timezone)))
        .astimezone(ZoneInfo(settings.timezone))
        .date()
    )


async def get_acks(store: StoreDep) -> AckStore:
    return AckStore.for_store(store)


AcksDep = Annotated[AckStore, Depends(get_acks)]


async def at_risk_filter(
    run: RunDep,
    settings: SettingsDep,
    store: StoreDep,
    lang: LangDep,
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
    owner: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only orders whose top stage this department owns (its name in any "
            "language, as the `owner` field says it; `OTD_RISK_STAGE_OWNERS`).",
        ),
    ] = None,
    supplier: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only orders waiting on this supplier: `supplier_id`, the supplier of "
            "the order's open purchase order with the worst record.",
        ),
    ] = None,
    handled: Annotated[
        Handled,
        Query(
            description="false (the worklist, default): orders without an acknowledgement in "
            "force; true: only acknowledged ones; all: both."
        ),
    ] = "false",
) -> AtRiskFilter:
    # async: building the dataclass needs no thread-pool hop (the key check ran before).
    owners = settings.stage_owners
    stages = None
    if owner is not None:
        stages = frozenset(stages_owned_by(owner, owners))
        if not stages:
            known = sorted({o.en for o in owners.values()} | {"order management"})
            message = t("error.unknown_owner", lang, owner=repr(owner), owners=", ".join(known))
            raise ApiError(422, "unknown_owner", f"query.owner: {message}")
    worklist = Worklist(owners, AckStore.for_store(store), run.info.run_id, today_in(settings))
    return AtRiskFilter(
        plant,
        customer,
        due_after,
        due_before,
        min_risk,
        stage,
        past_due,
        min_days_late,
        stages,
        supplier,
        handled,
        worklist,
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
        items=_items(page, lang, filters.worklist),
    )
    return json_response(body)


def _items(page: pd.DataFrame, lang: str, worklist: Worklist | None) -> list[AtRiskOrder]:
    owners = owner_names(page["top_stage"], worklist.owners, lang) if worklist else None
    acks = worklist.acks.current() if worklist else {}
    today = worklist.today if worklist else date.today()
    stages = page[list(STAGE_COLUMNS)].to_numpy()
    said = reasons_in(page, lang).tolist()
    keep = [
        "order_id",
        "rank",
        "risk",
        "top_stage",
        "plant_id",
        "customer_id",
        "due_date",
        "supplier_id",
    ]
    records = page[[*keep, "days_to_due"]].to_dict("records")
    forecasts = forecast_records(page, len(page))
    items = []
    for i, (rec, row, reasons, forecast) in enumerate(
        zip(records, stages, said, forecasts, strict=True)
    ):
        due = rec["due_date"]
        ack = acks.get(rec["order_id"])
        judged = None if ack is None else AckOut.judged(ack, float(rec["risk"]), today)
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
                owner=None if owners is None else owners[i],
                supplier_id=_text(rec["supplier_id"]),
                handled=judged is not None and judged.state == "in_force",
                acknowledgement=judged,
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
    "trained without one. `owner`: the department owning its top stage; `acknowledgement`: the "
    "planner's acknowledgement not withdrawn (in force or lapsed against this answer's risk).",
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def order_risk(
    order_id: str,
    model: ModelDep,
    state: StateDep,
    lang: LangDep,
    settings: SettingsDep,
    acks: AcksDep,
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
                **_handling(acks, order_id, None, None, settings, lang),
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
        **_handling(
            acks, order_id, explained.top_stage[0], float(explained.risk[0]), settings, lang
        ),
    )
    return json_response(body)


def _handling(
    acks: AckStore,
    order_id: str,
    top_stage: str | None,
    risk: float | None,
    settings: ServingConfig,
    lang: str,
) -> dict:
    """An order's ``owner``, ``handled`` and ``acknowledgement`` (judged against ``risk``)."""
    owner = owner_of(top_stage, settings.stage_owners)
    ack = acks.current().get(order_id)
    judged = None if ack is None else AckOut.judged(ack, risk, today_in(settings))
    return {
        "owner": None if owner is None else owner.name(lang),
        "handled": judged is not None and judged.state == "in_force",
        "acknowledgement": judged,
    }


def _value(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


OrderId = Annotated[str, Path(description="The order's id (`order_id`).", max_length=200)]


def _run_row(run: RunSnapshot, order_id: str, lang: str) -> pd.Series:
    """The served run's row of ``order_id``; 404 ``unknown_order`` when it has none."""
    hit = np.flatnonzero(run.rows["order_id"].to_numpy() == order_id)
    if not len(hit):
        raise ApiError(404, "unknown_order", t("error.order_not_found", lang, order_id=order_id))
    return run.rows.iloc[int(hit[0])]


@router.post(
    "/{order_id}/ack",
    status_code=status.HTTP_201_CREATED,
    response_model=AckOut,
    dependencies=PLANNER,
    summary="Mark an order handled (planner or admin key)",
    description="Acknowledges an order of the current scoring run: who handles it (`owner`, "
    "default the owner of its top stage), a `note`, and until when: `until` (a date, today or "
    "later: handled through its end, in the dataset's time zone) and/or `until_risk_rises_by` "
    "(it lapses once the order's risk is that much above its risk now). Replaces the order's "
    "acknowledgement in force, if any (kept, withdrawn). Stored with the key's name and the "
    "time. While in force the order leaves the default worklist (`handled=false`) and sends no "
    "webhook event. Unknown order: 404; a body that does not say until when: 422.",
    responses={422: {"model": ErrorResponse}},
)
def acknowledge(
    order_id: OrderId,
    body: AckIn,
    run: RunDep,
    key: PlannerDep,
    acks: AcksDep,
    settings: SettingsDep,
    lang: LangDep,
) -> Response:
    row = _run_row(run, order_id, lang)
    today = today_in(settings)
    if body.until is not None and body.until < today:
        message = t(
            "error.ack_until_past", lang, until=body.until, today=today, tz=settings.timezone
        )
        raise ApiError(422, "invalid_request", f"body.until: {message}")
    owner = owner_of(row["top_stage"], settings.stage_owners)
    risk = float(row["risk"])
    ack = acks.create(
        order_id,
        body,
        owner=None if owner is None else owner.name(lang),
        key_id=key.key_id,
        by=key.name or key.key_id,
        risk=risk,
        run_id=run.info.run_id,
    )
    answer = AckOut.judged(ack, risk, today).model_dump_json()
    return Response(answer, status_code=status.HTTP_201_CREATED, media_type="application/json")


@router.delete(
    "/{order_id}/ack",
    response_model=AckOut,
    dependencies=PLANNER,
    summary="Withdraw an order's acknowledgement (planner or admin key)",
    description="The order is back on the worklist at once. Answers the acknowledgement "
    "withdrawn (kept in the store with who withdrew it and when); 404 when the order has none.",
)
def withdraw_ack(
    order_id: OrderId, key: PlannerDep, acks: AcksDep, settings: SettingsDep, lang: LangDep
) -> Response:
    withdrawn: Ack | None = acks.withdraw(order_id, by=key.name or key.key_id)
    if withdrawn is None:
        raise ApiError(404, "no_acknowledgement", t("error.no_ack", lang, order_id=order_id))
    return json_response(AckOut.judged(withdrawn, None, today_in(settings)))
