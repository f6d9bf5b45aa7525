"""The monitoring summary: one model for ``summary.json``, the home's latest summary, the MLflow
monitoring run, the CLI and ``GET /v1/monitoring``.

Pydantic only (no Evidently, no pandas), so the API can validate and document the summary
without importing the monitoring computations. Fields added after summaries were first written
have defaults, so an older ``latest.json`` still reads.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from monitoring.status import Status

LATEST_SUMMARY = "monitoring/latest.json"
"""Under the project home: the latest summary, which ``otd-risk monitor`` writes and
``GET /v1/monitoring`` returns."""


class FeatureDrift(BaseModel):
    """One feature's drift: the method's score, its threshold and the verdict."""

    score: float
    drifted: bool
    method: str = Field(description="The Evidently stat test, chosen by the feature's unit.")
    threshold: float = Field(description="A score at or above it is drift.")
    unit: str | None = Field(
        default=None,
        description="The feature's unit (days, rate, ratio, count, share, multiple, number, "
        "category): the score is in days, share points or load-ratio points for the first "
        "three, relative to the reference mean for counts.",
    )


class PredictionDrift(BaseModel):
    """Drift of the predicted risk (normed Wasserstein)."""

    score: float
    drifted: bool


class CalibrationBin(BaseModel):
    """One risk decile of the matured orders."""

    decile: int
    mean_risk: float
    late_rate: float
    n: int


class RealisedSummary(BaseModel):
    """Realised accuracy on matured orders: the risk, then the delivery forecast."""

    n_matured: int
    n_late: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float | None
    reference_pr_auc: float | None = Field(description="The champion's validation PR AUC.")
    calibration_by_decile: list[CalibrationBin] = Field(default_factory=list)
    n_delivered: int = Field(
        default=0, description="Matured orders delivered by now: the forecast is judged on them."
    )
    mae_days: float | None = Field(default=None, description="Forecast days late: mean error.")
    coverage_80: float | None = Field(
        default=None, description="Share of delivered orders inside the 80% interval."
    )
    coverage_95: float | None = Field(
        default=None, description="Share of delivered orders inside the 95% interval."
    )


class MonitoringSummary(BaseModel):
    """The monitor's stable interface for alerting (see ``otd-risk monitor --help``)."""

    status: Status = Field(description="`ok`, `watch` or `retrain recommended`.")
    reasons: list[str]
    model_version: str
    generated_at: str = Field(description="When the monitor ran (ISO 8601, UTC).")
    since: str | None = Field(
        default=None, description="Only scoring runs as of this time or later (None: all)."
    )
    runs: list[str] = Field(default_factory=list, description="The scoring runs monitored.")
    drift: dict[str, FeatureDrift] = Field(description="Per feature.")
    drifted_share: float | None
    dataset_drift: bool | None = Field(
        default=None, description="Whether the drifted share reached the preset's drift share."
    )
    prediction_drift: PredictionDrift | None
    realised: RealisedSummary
