"""Dependencies shared by the routes: the app's settings, the served model, the latest run, the
language of the answer, the caller's role.

Those that only read what the process holds are ``async def``: FastAPI runs a plain ``def``
dependency in the thread pool, a hop of tens of microseconds per dependency and request for one
attribute read. The key check is ``async`` too: a key cached on SQLite is checked on the loop
(``serving.keys.verify_key_cached``), only a read of the key store goes to the thread pool.

The key is checked before anything else a route depends on: routes and routers declare it in
``dependencies=READER`` / ``ADMIN``, which FastAPI solves before the route's own parameters, so a
caller without a key learns nothing about the server's state (no model loaded, no scoring run,
no dataset) and gets 401 even for a body that fails validation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from serving.config import ServingConfig
from serving.errors import ApiError
from serving.i18n import choose_lang
from serving.keys import NEEDS_READ, KeyInfo, role_allows, verify_key, verify_key_cached
from serving.state import DataSnapshot, ModelSnapshot, RunSnapshot, ServingState
from serving.store import Store

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


async def get_settings(request: Request) -> ServingConfig:
    """The settings the app was created with (``create_app`` keeps them in ``app.state``, before
    the model is loaded: also there for an app whose startup has not run)."""
    return request.app.state.settings


SettingsDep = Annotated[ServingConfig, Depends(get_settings)]


async def get_store(request: Request) -> Store:
    """The serving store the app opened at start-up (``create_app``)."""
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


async def get_state(request: Request) -> ServingState:
    return request.app.state.serving


StateDep = Annotated[ServingState, Depends(get_state)]


async def get_lang(
    settings: SettingsDep,
    request: Request,
    lang: Annotated[
        str | None, Query(description="Language of texts for people: en or zh (zh-Hans).")
    ] = None,
) -> str:
    """The language of this request's texts for people: the ``lang`` parameter, else
    ``Accept-Language``, else the configured default (``async``: it only reads the request, no
    need for a thread-pool hop)."""
    return choose_lang(lang, request.headers.get("accept-language"), settings.default_lang)


LangDep = Annotated[str, Depends(get_lang)]


async def get_model(state: StateDep) -> ModelSnapshot:
    """The model served right now; the request keeps this object even if a new champion is
    swapped in while it runs."""
    model = state.model
    if model is None:
        raise ApiError(
            503,
            "model_not_loaded",
            state.last_error or "no model is loaded yet; retry when /readyz says ready",
        )
    return model


ModelDep = Annotated[ModelSnapshot, Depends(get_model)]


async def get_run(state: StateDep) -> RunSnapshot:
    run = state.run
    if run is None:
        raise ApiError(
            404,
            "no_scoring_run",
            "no scoring run is recorded yet; run `otd-risk score --data DIR --out FILE` first",
        )
    return run


RunDep = Annotated[RunSnapshot, Depends(get_run)]


def get_data(state: StateDep) -> DataSnapshot:
    data = state.data
    if data is None:
        raise ApiError(
            409,
            "no_dataset",
            "orders cannot be looked up by id: no dataset is "
            "configured (set OTD_RISK_DATA to a folder or SQL URL and restart) - or "
            "send the orders' `features` in the body",
        )
    return data


DataDep = Annotated[DataSnapshot, Depends(get_data)]


def require(role: str):
    """A dependency that lets through callers whose API key has ``role`` (or a higher one)."""

    async def check(
        store: StoreDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> KeyInfo:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401,
                "missing_api_key",
                "send an API key as `Authorization: Bearer "
                "<key>`; create one with `otd-risk keys create --role reader`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # A cached key on SQLite is checked here, on the event loop (microseconds); one that
        # needs a read of the store (a new key, a changed one, PostgreSQL) in the thread pool.
        key = verify_key_cached(store, credentials.credentials)
        if key is NEEDS_READ:
            key = await run_in_threadpool(verify_key, store, credentials.credentials)
        assert key is None or isinstance(key, KeyInfo), "verify_key answers a key or None"
        if key is None:
            raise ApiError(
                401,
                "invalid_api_key",
                "the API key is unknown or revoked; create a new one with `otd-risk keys create`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not role_allows(key.role, role):
            raise ApiError(
                403,
                "forbidden",
                f"this route needs an API key with role {role!r}; "
                f"key {key.key_id} has role {key.role!r}",
            )
        return key

    return check


require_reader = require("reader")
require_planner = require("planner")
require_admin = require("admin")
# One callable per role: a route that also takes the key as a parameter shares the check (FastAPI
# caches a dependency per request by its callable).
ReaderDep = Annotated[KeyInfo, Depends(require_reader)]
PlannerDep = Annotated[KeyInfo, Depends(require_planner)]
AdminDep = Annotated[KeyInfo, Depends(require_admin)]
READER = [Depends(require_reader)]
"""``dependencies=`` of reader routes: the key check runs first."""
PLANNER = [Depends(require_planner)]
"""``dependencies=`` of routes that change what planners see (acknowledgements)."""
ADMIN = [Depends(require_admin)]
"""``dependencies=`` of admin routes."""
