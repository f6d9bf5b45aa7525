"""The OTD board (看板): ``GET /v1/board`` (its tables as JSON), ``GET /v1/board/export`` (the
same tables as an Excel workbook) and the page at ``/board`` with its assets.

The figures are ``serving.board.build_board``'s, over the served dataset as of its snapshot time
and the current scoring run. Every row carries ``link``: the planner's list (``/``) with the
filters that show the orders behind it, as URL query parameters the list reads at start.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from serving.board import DEFAULT_MIN_RISK, TOP_CUSTOMERS, Board, build_board
from serving.config import ServingConfig
from serving.deps import READER, DataDep, LangDep, ModelDep, SettingsDep, StateDep
from serving.export import EXPORT_FORMATS, export_frame
from serving.i18n import stage_name
from serving.owners import ORDER_OWNER, StageOwner
from serving.routers.page import STATIC_DIR, listed_file
from serving.schemas import ErrorResponse, RunOut, json_response
from serving.state import DataSnapshot, RunSnapshot

BOARD_ASSETS = {
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
    # uPlot, vendored and pinned: see static/VENDORED.md (version, licence, hashes).
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}
LIST_PATH = "/"
"""The planner's list the board's figures click through to."""

router = APIRouter(tags=["board"])


# -- response ---------------------------------------------------------------------------------
class Linked(BaseModel):
    link: str = Field(
        description="The planner's list filtered to the orders behind this figure (path and "
        "query: `plant`, `customer`, `stage`, `owner`, `min_risk`)."
    )


class WeekRate(Linked):
    scope: Literal["all", "plant", "customer"]
    key: str = Field(description="The plant_id or customer_id; empty for `all`.")
    week: date = Field(description="Monday of the week (local delivery dates).")
    delivered: int
    on_time: int
    on_time_rate: float


class StageLoss(Linked):
    stage: str
    stage_name: str
    owner: str = Field(description="The stage's owner (its English name: the list's filter).")
    owner_name: str
    days_lost: float = Field(description="Days the late orders lost in this stage (beyond plan).")
    late_orders: int = Field(description="Late orders that lost days in this stage.")


class OwnerLoss(Linked):
    owner: str
    owner_name: str
    days_lost: float
    late_orders: int


class OpenAtRisk(Linked):
    owner: str
    owner_name: str
    stage: str
    stage_name: str
    orders: int
    past_due: int = Field(description="Of these, orders whose due date is already over.")
    mean_risk: float


class SupplierDays(Linked):
    supplier_id: str
    purchase_orders: int
    late: int
    days_added: float = Field(description="Days its purchase orders came after their promise.")


class PlantDays(Linked):
    plant_id: str
    delivered: int
    late: int
    on_time_rate: float
    days_late: float = Field(description="Days late summed over its late settled orders.")


class BoardSummary(Linked):
    delivered: int = Field(description="Orders delivered in the window (not cancelled).")
    on_time: int
    on_time_rate: float | None
    late_days_total: float


class BoardOut(BaseModel):
    """The board: a year of settled orders up to ``as_of`` and the current run's open orders."""

    as_of: datetime = Field(description="The served dataset's snapshot time.")
    since: datetime = Field(description="Start of the window (exclusive): a year before as_of.")
    grace_days: int
    min_risk: float = Field(description="Open orders count as at risk from this risk on.")
    run: RunOut | None = Field(description="The scoring run of `open_at_risk`; null: none yet.")
    summary: BoardSummary
    weekly: list[WeekRate]
    lost_by_stage: list[StageLoss]
    lost_by_owner: list[OwnerLoss]
    open_at_risk: list[OpenAtRisk]
    suppliers: list[SupplierDays]
    plants: list[PlantDays]


MinRisk = Annotated[
    float,
    Query(ge=0, le=1, description="Open orders count as at risk from this risk (0-1) on."),
]
Top = Annotated[
    int,
    Query(
        ge=1,
        le=100,
        description="How many customers get a weekly series, and how many suppliers and "
        "plants are listed (those that add the most days).",
    ),
]


# -- routes -----------------------------------------------------------------------------------
@router.get(
    "/v1/board",
    response_model=BoardOut,
    summary="The OTD board: on-time rate by week, lost days by stage and owner, open risk",
    description="Over the orders delivered in the year up to the served dataset's snapshot: "
    "the on-time rate per week (overall, per plant, per customer for the `top` customers with "
    "the most deliveries; weeks run Monday to Sunday by the local delivery date, the first and "
    "last may be partial), the days late orders lost per stage (beyond plan) and per owner, "
    "the suppliers and plants that add the most days; and the current run's open orders at "
    "risk by owner and top stage. Names in the request's language.",
    dependencies=READER,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
def board(
    model: ModelDep,
    data: DataDep,
    state: StateDep,
    settings: SettingsDep,
    lang: LangDep,
    min_risk: MinRisk = DEFAULT_MIN_RISK,
    top: Top = TOP_CUSTOMERS,
) -> Response:
    return json_response(_served_board(model, data, state, settings, lang, min_risk, top)[1])


@router.get(
    "/v1/board/export",
    summary="The OTD board's tables as an Excel workbook",
    description="One sheet per table of `GET /v1/board` (same parameters), names in the "
    "request's language; text a spreadsheet would run as a formula gets a leading `'`.",
    dependencies=READER,
    responses={
        200: {"content": {EXPORT_FORMATS["xlsx"].split(";")[0]: {}}},
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
def board_export(
    model: ModelDep,
    data: DataDep,
    state: StateDep,
    settings: SettingsDep,
    lang: LangDep,
    min_risk: MinRisk = DEFAULT_MIN_RISK,
    top: Top = TOP_CUSTOMERS,
    format: Annotated[Literal["xlsx"], Query(description="xlsx")] = "xlsx",
) -> Response:
    built, body = _served_board(model, data, state, settings, lang, min_risk, top)
    stamp = pd.Timestamp(built.as_of).strftime("%Y%m%d-%H%M")
    return Response(
        content=board_workbook(body),
        media_type=EXPORT_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="otd-risk-board-{stamp}.xlsx"'},
    )


@router.get("/board", include_in_schema=False)
def board_page() -> FileResponse:
    """The board's page (the key and language as on the planner's page)."""
    return FileResponse(STATIC_DIR / "board.html", media_type="text/html; charset=utf-8")


@router.get("/board/assets/{name}", include_in_schema=False)
def board_asset(name: str) -> FileResponse:
    return listed_file(name, BOARD_ASSETS, "board asset")


# -- building ---------------------------------------------------------------------------------
def _served_board(
    model, data: DataSnapshot, state, settings: ServingConfig, lang: str, min_risk: float, top: int
) -> tuple[Board, BoardOut]:
    """The board over what is served and its answer: the stage owners the server is configured
    with, the grace the served model was trained with (the board says late as the model does),
    the current run."""
    owners = settings.stage_owners
    grace = int(model.risk_model.meta.get("late_grace_days", 0))
    built = _board_for(data, state.run, owners, grace, min_risk, top)
    return built, board_out(built, state.run, owners, lang, grace, min_risk, top)


def _board_for(
    data: DataSnapshot,
    run: RunSnapshot | None,
    owners: Mapping[str, StageOwner],
    grace: int,
    min_risk: float,
    top: int,
) -> Board:
    """``build_board`` over what is served. Built per request: about 60 ms for the 20,000
    orders of the demo's world on this machine, for a page managers open a few times a week."""
    built = build_board(
        data.dataset,
        data.as_of,
        run_rows=None if run is None else run.rows,
        owners=owners,
        grace_days=grace,
        min_risk=min_risk,
        top_customers=top,
    )
    return replace(built, suppliers=built.suppliers.head(top), plants=built.plants.head(top))


def list_link(min_risk: float, **filters: str) -> str:
    """The planner's list with ``filters`` (empty ones left out) and ``min_risk``."""
    query = {k: v for k, v in filters.items() if v}
    query["min_risk"] = f"{min_risk:g}"
    return f"{LIST_PATH}?{urlencode(query)}"


def board_out(
    built: Board,
    run: RunSnapshot | None,
    owners: Mapping[str, StageOwner],
    lang: str,
    grace: int,
    min_risk: float,
    top: int,
) -> BoardOut:
    names = {o.en: o.name(lang) for o in (*owners.values(), ORDER_OWNER)}

    def link(**filters: str) -> str:
        return list_link(min_risk, **filters)

    weekly = [
        WeekRate(
            scope=r.scope,
            key=r.key,
            week=r.week.date(),
            delivered=int(r.delivered),
            on_time=int(r.on_time),
            on_time_rate=float(r.on_time_rate),
            link=link(**{r.scope: r.key} if r.scope != "all" else {}),
        )
        for r in built.weekly.itertuples(index=False)
    ]
    lost = [
        StageLoss(
            stage=r.stage,
            stage_name=stage_name(r.stage, lang),
            owner=r.owner,
            owner_name=names.get(r.owner, r.owner),
            days_lost=float(r.days_lost),
            late_orders=int(r.late_orders),
            link=link(stage=r.stage),
        )
        for r in built.lost_by_stage.itertuples(index=False)
    ]
    by_owner = [
        OwnerLoss(
            owner=r.owner,
            owner_name=names.get(r.owner, r.owner),
            days_lost=float(r.days_lost),
            late_orders=int(r.late_orders),
            link=link(owner=r.owner),
        )
        for r in built.lost_by_owner.itertuples(index=False)
    ]
    open_now = [
        OpenAtRisk(
            owner=r.owner,
            owner_name=names.get(r.owner, r.owner),
            stage=r.stage,
            stage_name=stage_name(r.stage, lang),
            orders=int(r.orders),
            past_due=int(r.past_due),
            mean_risk=float(r.mean_risk),
            link=link(owner=r.owner, stage=r.stage),
        )
        for r in built.open_at_risk.itertuples(index=False)
    ]
    suppliers = [
        SupplierDays(
            supplier_id=str(r.supplier_id),
            purchase_orders=int(r.purchase_orders),
            late=int(r.late),
            days_added=float(r.days_added),
            link=link(supplier=str(r.supplier_id)),
        )
        for r in built.suppliers.itertuples(index=False)
    ]
    plants = [
        PlantDays(
            plant_id=str(r.plant_id),
            delivered=int(r.delivered),
            late=int(r.late),
            on_time_rate=float(r.on_time_rate),
            days_late=float(r.days_late),
            link=link(plant=str(r.plant_id)),
        )
        for r in built.plants.itertuples(index=False)
    ]
    info = None if run is None else run.info
    return BoardOut(
        as_of=built.as_of.to_pydatetime(),
        since=built.since.to_pydatetime(),
        grace_days=grace,
        min_risk=min_risk,
        run=None
        if info is None
        else RunOut(
            run_id=info.run_id,
            created_at=info.created_at,
            as_of=info.as_of,
            model_version=info.model_version,
            data_fingerprint=info.data_fingerprint,
            n_scored=info.n_scored,
        ),
        summary=BoardSummary(
            delivered=built.delivered,
            on_time=built.on_time,
            on_time_rate=built.on_time_rate,
            late_days_total=built.late_days_total,
            link=link(),
        ),
        weekly=weekly,
        lost_by_stage=lost,
        lost_by_owner=by_owner,
        open_at_risk=open_now,
        suppliers=suppliers,
        plants=plants,
    )


# -- the workbook -----------------------------------------------------------------------------
SHEETS = (
    "summary",
    "weekly",
    "lost_by_stage",
    "lost_by_owner",
    "open_at_risk",
    "suppliers",
    "plants",
)


def board_workbook(body: BoardOut) -> bytes:
    """The board's tables, one sheet each (the links left out: they point into this server),
    text cells neutralised as in every export (``serving.export.export_frame``)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for sheet in SHEETS:
        value = getattr(body, sheet)
        records = [value] if isinstance(value, BaseModel) else value
        frame = pd.DataFrame([r.model_dump(exclude={"link"}) for r in records])
        if sheet == "summary":
            frame.insert(0, "as_of", body.as_of.isoformat())
            frame.insert(1, "since", body.since.isoformat())
        ws = wb.create_sheet(sheet)
        ws.freeze_panes = "A2"
        ws.append(list(frame.columns))
        for row in export_frame(frame).itertuples(index=False, name=None):
            ws.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # NumPy scalar -> Python scalar for openpyxl
        return value.item()
    return value
