"""``otd-risk monitor``: drift of recent scoring runs against the champion's reference, realised
accuracy on matured orders, and a status — computed first, then written (HTML, JSON, MLflow)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from data.dataset import Dataset
from features.registry import FeatureSpec
from monitoring.config import MonitoringConfig as Settings  # the settings monitoring reads
from monitoring.config import RunLog
from monitoring.drift import DriftResult, compute_drift
from monitoring.realised import Realised, known_outcomes, realised_performance
from monitoring.status import Status, Thresholds, decide_status
from monitoring.summary import (
    LATEST_SUMMARY,
    CalibrationBin,
    FeatureDrift,
    MonitoringSummary,
    PredictionDrift,
    RealisedSummary,
)


@dataclass
class MonitorResult:
    """Everything the monitor found."""

    status: Status
    reasons: list[str]
    drift: DriftResult | None
    realised: Realised
    model_version: str
    reference_pr_auc: float | None
    runs: list[str]
    since: str | None

    def summary(self) -> MonitoringSummary:
        """The stable interface for alerting (:class:`monitoring.summary.MonitoringSummary`)."""
        drift = self.drift
        realised = self.realised
        return MonitoringSummary(
            status=self.status,
            reasons=self.reasons,
            model_version=self.model_version,
            generated_at=datetime.now(UTC).isoformat(),
            since=self.since,
            runs=self.runs,
            drift={
                name: FeatureDrift(
                    score=d.score,
                    drifted=d.drifted,
                    method=d.method,
                    threshold=d.threshold,
                    unit=d.unit,
                )
                for name, d in (drift.features.items() if drift else [])
            },
            drifted_share=drift.drifted_share if drift else None,
            dataset_drift=drift.dataset_drift if drift else None,
            prediction_drift=(
                PredictionDrift(score=drift.prediction.score, drifted=drift.prediction.drifted)
                if drift and drift.prediction
                else None
            ),
            realised=RealisedSummary(
                n_matured=realised.n_matured,
                n_late=realised.n_late,
                roc_auc=realised.roc_auc,
                pr_auc=realised.pr_auc,
                brier=realised.brier,
                reference_pr_auc=self.reference_pr_auc,
                calibration_by_decile=[CalibrationBin(**b) for b in realised.calibration],
                # The delivery forecast beside the risk: error and interval coverage.
                n_delivered=realised.n_delivered,
                mae_days=realised.mae_days,
                coverage_80=realised.coverage_80,
                coverage_95=realised.coverage_95,
            ),
        )


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        drift_share_watch=settings.monitor_drift_share_watch,
        drift_share_retrain=settings.monitor_drift_share_retrain,
        max_pr_auc_drop=settings.monitor_max_pr_auc_drop,
        min_matured=settings.monitor_min_matured,
    )


def monitor(
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    features: Sequence[FeatureSpec],
    model_version: str,
    reference_pr_auc: float | None,
    thresholds: Thresholds,
    runs: list[str] | None = None,
    since: str | None = None,
) -> MonitorResult:
    """Pure: figures and status from a reference frame, the scored rows and known outcomes;
    each feature's drift judged in its unit (``features``: the champion's specs)."""
    drift = None
    if len(current) and len(reference):
        drift = compute_drift(reference, current, features=features)
    realised = (
        realised_performance(current, outcomes)
        if outcomes is not None and len(current)
        else Realised(0, 0, None, None, None)
    )
    drifted = sorted(n for n, d in drift.features.items() if d.drifted) if drift else []
    status, reasons = decide_status(
        drifted_share=drift.drifted_share if drift else 0.0,
        drifted_features=drifted,
        prediction_drifted=bool(drift and drift.prediction and drift.prediction.drifted),
        realised_pr_auc=realised.pr_auc,
        n_matured=realised.n_matured,
        reference_pr_auc=reference_pr_auc,
        thresholds=thresholds,
        n_late=realised.n_late,
    )
    if not len(current):
        status, reasons = "watch", ["no complete scoring runs in the window: nothing to monitor"]
    return MonitorResult(
        status, reasons, drift, realised, model_version, reference_pr_auc, runs or [], since
    )


def run_monitor(
    settings: Settings, *, log: RunLog, dataset: Dataset | None, since: object | None = None
) -> MonitorResult:
    """Load the champion's reference, the scoring runs ``log`` has since ``since`` and the
    outcomes known in ``dataset`` (its snapshot time is "now"), then :func:`monitor`."""
    from training.registry import load_champion

    champion = load_champion(settings)
    reference = load_reference(settings, champion.run_id)
    runs = log.runs(since=since)
    current = log.load(list(runs["run_id"]))
    outcomes = None
    if dataset is not None:
        outcomes = known_outcomes(dataset, dataset.snapshot_time(), settings.late_grace_days)
    metrics = champion.metrics or {}
    reference_pr_auc = metrics.get("pr_auc")
    return monitor(
        reference=reference,
        current=current,
        outcomes=outcomes,
        features=champion.risk_model.feature_specs,
        model_version=str(champion.version),
        reference_pr_auc=reference_pr_auc,
        thresholds=thresholds_from(settings),
        runs=list(runs["run_id"]),
        since=None if since is None else str(pd.Timestamp(since)),
    )


REFERENCE_ARTIFACT = "reference/reference_features.parquet"
"""Logged by training on the champion's run: training features, late and risk."""


def load_reference(settings: Settings, run_id: str | None) -> pd.DataFrame:
    """The champion's training reference (features and risk), from its MLflow run."""
    import mlflow

    if not run_id:
        raise LookupError("the champion has no training run, so no reference to compare with")
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=REFERENCE_ARTIFACT, tracking_uri=settings.tracking_uri
    )
    return pd.read_parquet(path)


def write_outputs(result: MonitorResult, out: Path | None, settings: Settings) -> MonitoringSummary:
    """Write report.html and summary.json (to ``out`` when given), the home's latest summary, and
    an MLflow monitoring run. Returns the summary."""
    summary = result.summary()
    text = json.dumps(summary.model_dump(mode="json"), indent=2)
    home = settings.ensure_home()
    latest = home / LATEST_SUMMARY
    latest.parent.mkdir(parents=True, exist_ok=True)
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(latest)  # atomic: the API never reads half a summary
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(text)
        if result.drift is not None and result.drift.snapshot is not None:
            result.drift.snapshot.save_html(str(out / "report.html"))
        else:
            (out / "report.html").write_text(
                "<html><body><h1>otd-risk monitoring</h1><p>No drift report: "
                + "; ".join(result.reasons)
                + "</p></body></html>"
            )
    _log_to_mlflow(result, summary, settings, out)
    return summary


def _log_to_mlflow(
    result: MonitorResult, summary: MonitoringSummary, settings: Settings, out: Path | None
) -> None:
    import mlflow

    from training.registry import use_tracking

    experiment_id = use_tracking(settings, f"{settings.model_name}-monitoring")
    with mlflow.start_run(experiment_id=experiment_id, run_name="monitor"):
        mlflow.set_tags({"status": result.status, "model_version": result.model_version})
        figures = {
            "drifted_share": summary.drifted_share,
            "n_matured": result.realised.n_matured,
            "realised_roc_auc": result.realised.roc_auc,
            "realised_pr_auc": result.realised.pr_auc,
            "realised_brier": result.realised.brier,
            "realised_mae_days": result.realised.mae_days,
            "realised_coverage_80": result.realised.coverage_80,
            "realised_coverage_95": result.realised.coverage_95,
        }
        mlflow.log_metrics({k: float(v) for k, v in figures.items() if v is not None})
        mlflow.log_dict(summary.model_dump(mode="json"), "summary.json")
        if out is not None and (out / "report.html").exists():
            mlflow.log_artifact(str(out / "report.html"))
