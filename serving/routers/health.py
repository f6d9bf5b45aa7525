"""Liveness, readiness and metrics: open, no API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.deps import StateDep
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz(state: StateDep) -> Health:
    model = state.model
    return Health(status="ok", model_version=None if model is None else model.version)


@router.get(
    "/readyz",
    response_model=Health,
    summary="Ready to score: a model is loaded",
    responses={503: {"model": Health}},
)
def readyz(state: StateDep):
    model = state.model
    if model is None:
        body = Health(status="not_ready", detail=state.last_error or "loading the model")
        return JSONResponse(body.model_dump(), status_code=503)
    if state.expects_data and state.data is None:
        # A model came back (tracking store recovered) but orders cannot be looked up yet.
        body = Health(status="not_ready", detail=state.last_error or "loading the dataset")
        return JSONResponse(body.model_dump(), status_code=503)
    # Ready while a model serves, even when a newer champion failed to load: say so.
    return Health(status="ready", model_version=model.version, detail=state.last_error)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
def metrics(request: Request):
    return request.app.state.metrics.render()
