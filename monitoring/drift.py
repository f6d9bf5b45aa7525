"""Data and prediction drift between the champion's training reference and recent scoring runs.

Computes, then returns figures; writing HTML, JSON or MLflow runs is a separate step
(:mod:`monitoring.report`). Evidently 0.7's current API: ``Report([...]).run(current_data=...,
reference_data=...)`` returns a snapshot whose tests carry the drift verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

PREDICTION_COLUMN = "risk"


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: the method's score, its threshold and the verdict."""

    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """Per-feature drift, the share of drifted features and the prediction's drift."""

    features: dict[str, ColumnDrift]
    prediction: ColumnDrift | None
    drifted_share: float
    dataset_drift: bool
    n_reference: int
    n_current: int
    snapshot: object = field(repr=False, default=None)
    """Evidently's snapshot, for the HTML report."""


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    max_rows: int = 50_000,
    seed: int = 0,
) -> DriftResult:
    """Drift of every feature (and of ``risk`` when both frames have it), current vs reference.

    Large frames are sampled to ``max_rows`` rows each (seeded): drift statistics on hundreds of
    thousands of rows cost minutes and flag negligible shifts as significant.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    has_prediction = PREDICTION_COLUMN in reference.columns and PREDICTION_COLUMN in current.columns
    num = [c for c in numerical if c in reference.columns and c in current.columns]
    cat = [c for c in categorical if c in reference.columns and c in current.columns]
    if has_prediction:
        num = [*num, PREDICTION_COLUMN]
    columns = num + cat
    ref = _sample(reference[columns], max_rows, seed).copy()
    cur = _sample(current[columns], max_rows, seed).copy()
    for frame in (ref, cur):
        frame[num] = frame[num].astype("float64")
        for c in cat:
            frame[c] = frame[c].astype("object").where(frame[c].notna(), None)

    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    report = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    per_column = _value_drifts(snapshot.dict())
    prediction = per_column.pop(PREDICTION_COLUMN, None) if has_prediction else None
    drifted = [c for c, d in per_column.items() if d.drifted]
    share = len(drifted) / len(per_column) if per_column else 0.0
    return DriftResult(
        features=per_column,
        prediction=prediction,
        drifted_share=share,
        dataset_drift=share >= drift_share,
        n_reference=len(ref),
        n_current=len(cur),
        snapshot=snapshot,
    )


def _value_drifts(snapshot: dict) -> dict[str, ColumnDrift]:
    """Per-column drift scores and verdicts from an Evidently snapshot's metrics and tests."""
    by_metric: dict[str, dict] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            by_metric[metric["id"]] = {
                "column": config["column"],
                "score": float(metric["value"]),
                "method": str(config.get("method", "")),
                "threshold": float(config.get("threshold") or 0.0),
            }
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id in by_metric:
            # Read the test's status rather than comparing raw values: p-value methods flag
            # *below* their threshold, distance methods *above*.
            verdicts[metric_id] = test.get("status") == "FAIL"
    return {
        m["column"]: ColumnDrift(
            score=m["score"],
            method=m["method"],
            threshold=m["threshold"],
            drifted=verdicts.get(metric_id, False),
        )
        for metric_id, m in by_metric.items()
    }
