"""The planner's page at ``/`` (static HTML/JS), its message catalogue, and the export of the
current view of the ranked list to CSV or Excel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse

from data.contract import EXPLANATION_STAGES
from serving.columns import TRANSLATED_REASON_COLUMNS, reasons_in
from serving.deps import READER, LangDep, RunDep
from serving.export import EXPORT_FORMATS, export_bytes
from serving.i18n import catalogue, stage_name
from serving.routers.orders import DUE_WINDOW, FilterDep
from serving.schemas import ErrorResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "whatif.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The planner's page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    return listed_file(name, STATIC_FILES, "static file")


def listed_file(name: str, files: dict[str, str], what: str) -> FileResponse:
    """``STATIC_DIR / name`` when ``files`` (name -> media type) lists it, else 404: a fixed
    list, not a directory mount, so nothing else under the package can be fetched."""
    if name not in files:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {what} {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=files[name])


@router.get("/v1/messages", tags=["i18n"])
def messages(lang: LangDep) -> dict:
    """Every text of the page and the stage names in one language (``lang``, else
    ``Accept-Language``, else the server's default). No key needed: nothing here is private."""
    return {"lang": lang, "messages": catalogue(lang)}


@router.get(
    "/v1/orders/at-risk/export",
    tags=["orders"],
    summary="The current view of the ranked list as a CSV or Excel file",
    description="The rows `GET /v1/orders/at-risk` would list with the same filters (all "
    "pages); reasons and stage names in the request's language. " + DUE_WINDOW,
    dependencies=READER,
    responses={
        200: {"content": {m.split(";")[0]: {} for m in EXPORT_FORMATS.values()}},
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)
def export_at_risk(
    run: RunDep,
    lang: LangDep,
    filters: FilterDep,
    format: Annotated[Literal["csv", "xlsx"], Query(description="csv or xlsx")] = "csv",
) -> Response:
    """The rows ``GET /v1/orders/at-risk`` would list with the same filters (all pages), as a
    file. Text cells a spreadsheet would run as formulas (= + - @, tab, CR) get a leading '.
    Adds ``top_stage_name`` in the request's language, the acknowledgement
    (``serving.columns.ACK_COLUMNS``), the model version and the scoring time."""
    rows = filters.apply(run.rows)
    rows = filters.annotate(rows, lang)  # owner in the reader's language, acknowledgements
    # The file's columns are the ranked list's: reasons in the reader's language, once.
    rows = rows.assign(reasons=reasons_in(rows, lang)).drop(
        columns=[c for c in TRANSLATED_REASON_COLUMNS if c in rows.columns]
    )
    names = {s: stage_name(s, lang) for s in EXPLANATION_STAGES}
    rows.insert(
        rows.columns.get_loc("top_stage") + 1, "top_stage_name", rows["top_stage"].map(names)
    )
    rows["model_version"] = run.info.model_version
    rows["scored_at"] = run.info.created_at.isoformat()
    stamp = run.info.created_at.strftime("%Y%m%d-%H%M")
    return Response(
        content=export_bytes(rows, format),
        media_type=EXPORT_FORMATS[format],
        headers={
            "Content-Disposition": f'attachment; filename="otd-risk-at-risk-{stamp}.{format}"',
            "X-Model-Version": run.info.model_version,
        },
    )
