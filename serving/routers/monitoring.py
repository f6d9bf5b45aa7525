"""``GET /v1/monitoring``: the latest summary written by ``otd-risk monitor``."""

from __future__ import annotations

import json

from fastapi import APIRouter

# The summary's model and path only (pydantic): the server never imports the monitoring
# computations and Evidently.
from monitoring.summary import LATEST_SUMMARY, MonitoringSummary
from serving.deps import READER, SettingsDep
from serving.errors import ApiError
from serving.schemas import ErrorResponse

router = APIRouter(
    prefix="/v1/monitoring",
    tags=["monitoring"],
    dependencies=READER,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)


@router.get(
    "",
    response_model=MonitoringSummary,
    summary="The latest monitoring summary: status, drift, realised accuracy",
    responses={404: {"model": ErrorResponse}},
)
def latest_summary(settings: SettingsDep) -> MonitoringSummary:
    path = settings.home.resolve() / LATEST_SUMMARY
    if not path.exists():
        raise ApiError(
            404,
            "no_monitoring_summary",
            "no monitoring summary yet: run `otd-risk monitor --data DIR|URL`",
        )
    return MonitoringSummary.model_validate(json.loads(path.read_text()))
