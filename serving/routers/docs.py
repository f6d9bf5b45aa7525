"""The API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) served from the installed
``fastapi-offline`` package instead of a CDN, so they work on a plant network without internet
access; and the site's icon.

FastAPI's own docs pages load Swagger UI and ReDoc from cdn.jsdelivr.net (blank offline).
Here the same pages (``fastapi.openapi.docs``) point at this server's copies; Swagger UI's inline
start-up script is allowed by its hash in the page's Content-Security-Policy, nothing else
inline runs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
ASSETS_URL = "/docs/static"
FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.png"

OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
TITLE = "otd-risk"

router = APIRouter(include_in_schema=False)


def _csp(html: str) -> str:
    """A policy for a docs page: its own inline scripts by hash, styles inline too (Swagger UI
    and ReDoc set them at run time), ReDoc's web worker from a blob, everything else from here."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def _page(response: HTMLResponse) -> tuple[str, dict[str, str]]:
    """The page's HTML and its headers, made once (a response object is made per request)."""
    html = bytes(response.body).decode()
    return html, {"Content-Security-Policy": _csp(html)}


SWAGGER = _page(
    get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} - API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url="/favicon.ico",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        # No badge from validator.swagger.io: nothing is fetched from outside.
        swagger_ui_parameters={"validatorUrl": None},
    )
)
REDOC = _page(
    get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} - API",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url="/favicon.ico",
        with_google_fonts=False,
    )
)
OAUTH2_REDIRECT = _page(get_swagger_ui_oauth2_redirect_html())


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(SWAGGER[0], headers=SWAGGER[1])


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return HTMLResponse(OAUTH2_REDIRECT[0], headers=OAUTH2_REDIRECT[1])


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC[0], headers=REDOC[1])


@router.get(ASSETS_URL + "/{name}")
def docs_asset(name: str) -> FileResponse:
    # A fixed list, not a directory mount: nothing else of the package can be fetched.
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no docs asset {name!r}")
    return FileResponse(ASSETS_DIR / name, media_type=ASSETS[name])


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(FAVICON, media_type="image/png")
