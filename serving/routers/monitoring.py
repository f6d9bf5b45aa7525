"""``GET /v1/monitoring``: the latest summary written by ``otd-risk monitor``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from serving.deps import READER, SettingsDep
from serving.errors import ApiError
from serving.schemas import ErrorResponse

LATEST_SUMMARY = "monitoring/latest.json"
"""Where ``otd-risk monitor`` keeps its latest summary, under the project home (the monitoring
package writes it; the API only reads the file, so the server never imports Evidently)."""

router = APIRouter(
    prefix="/v1/monitoring",
    tags=["monitoring"],
    dependencies=READER,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)


class MonitoringSummary(BaseModel):
    """The monitor's stable interface for alerting (see ``otd-risk monitor --help``)."""

    status: str = Field(description="`ok`, `watch` or `retrain recommended`.")
    reasons: list[str]
    model_version: str
    generated_at: str
    drift: dict[str, Any] = Field(description="Per feature: score, drifted, method, threshold.")
    drifted_share: float | None
    prediction_drift: dict[str, Any] | None
    realised: dict[str, Any] = Field(description="n_matured, roc_auc, pr_auc, brier, ...")


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
