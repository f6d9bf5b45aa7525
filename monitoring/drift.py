"""Data and prediction drift between the champion's training reference and recent scoring runs.

Computes, then returns figures; writing HTML, JSON or MLflow runs is a separate step
(:mod:`monitoring.report`). Evidently 0.7's current API: ``Report([...]).run(current_data=...,
reference_data=...)`` returns a snapshot whose tests carry the drift verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.registry import FeatureSpec, Unit

PREDICTION_COLUMN = "risk"


@dataclass(frozen=True)
class DriftMethod:
    """How one kind of column is compared: an Evidently stat test (by name) and its threshold
    (score at or above it = drift)."""

    name: str
    threshold: float


# Drift is judged in each feature's own units, with a threshold that is a change a planner would
# act on. Normed Wasserstein (Evidently's default above 1,000 rows) divides by the reference's
# spread: for per-entity aggregates (one value per supplier/plant/group and moment, tiny spread
# between entities) and mostly-zero "days behind" features it turned the weekly noise of runs with
# no change into 0.2-0.5 (threshold 0.1); and K-S, which Evidently picks when fewer than 1,000
# values are non-empty, flags any move of a few entity values (p ~ 0). Measured on the planted
# supplier degradation (tests/monitoring/test_planted_degradation.py, docs/monitoring.md).

DAYS_METHOD = DriftMethod("abs_wasserstein", 1.0)
"""Features in days (unit ``days``): Wasserstein distance in days, drift at one day. Runs with no
change: <= 0.4; the degraded supplier: 1.2-2.9."""

RATE_METHOD = DriftMethod("abs_wasserstein", 0.05)
"""An entity's past outcome shares in [0, 1] (unit ``rate``): Wasserstein distance in share units,
drift at 5 points. Runs with no change: <= 0.025; the degraded supplier's on-time rates:
0.13-0.23."""

RATIO_METHOD = DriftMethod("abs_wasserstein", 0.1)
"""Load over capacity (unit ``ratio``): Wasserstein distance in ratio units, drift at 10 points
of utilisation."""

COUNT_METHOD = DriftMethod("rel_wasserstein", 0.25)
"""Per-entity counts (unit ``count``): Wasserstein distance relative to the reference mean, drift
at 25%: a few entities' counts move by a share of their level."""

NUMERIC_METHOD = DriftMethod("wasserstein", 0.1)
"""The order's own numbers, shares and multiples (units ``number``, ``share``, ``multiple``:
spread across orders, so the reference's spread is no tiny denominator) and the predicted risk:
normed Wasserstein, fixed so that a small or mostly empty sample does not switch to K-S."""

CATEGORICAL_METHOD = DriftMethod("jensenshannon", 0.1)
"""Categorical features: Jensen-Shannon distance (Evidently's large-sample default), fixed."""

METHOD_BY_UNIT: dict[Unit, DriftMethod] = {
    "days": DAYS_METHOD,
    "rate": RATE_METHOD,
    "ratio": RATIO_METHOD,
    "count": COUNT_METHOD,
    "share": NUMERIC_METHOD,
    "multiple": NUMERIC_METHOD,
    "number": NUMERIC_METHOD,
    "category": CATEGORICAL_METHOD,
}
"""The drift method of each unit of ``features.registry.Unit``."""


def drift_method(spec: FeatureSpec) -> DriftMethod:
    """The method and threshold for one feature, from its declared unit."""
    return METHOD_BY_UNIT[spec.unit]


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: the method's score, its threshold and the verdict."""

    score: float
    method: str
    threshold: float
    drifted: bool
    unit: Unit | None = None
    """The feature's unit: ``score`` is a distance in it for ``days``, ``rate`` and ``ratio``,
    relative to the reference mean for ``count`` (None for the predicted risk)."""


@dataclass
class DriftResult:
    """Per-feature drift, the share of drifted features and the prediction's drift."""

    features: dict[str, ColumnDrift]
    prediction: ColumnDrift | None
    drifted_share: float
    dataset_drift: bool
    n_reference: int
    n_current: int
    snapshot: Any = field(repr=False, default=None)
    """Evidently's snapshot, for the HTML report (Evidently ships no types: ``Any``)."""


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Sequence[FeatureSpec],
    drift_share: float = 0.5,
    max_rows: int = 50_000,
    seed: int = 0,
) -> DriftResult:
    """Drift of every feature in ``features`` that both frames hold (and of ``risk`` when both
    have it), current vs reference, each by the method of its unit.

    Large frames are sampled to ``max_rows`` rows each (seeded): drift statistics on hundreds of
    thousands of rows cost minutes and flag negligible shifts as significant.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    has_prediction = PREDICTION_COLUMN in reference.columns and PREDICTION_COLUMN in current.columns
    both = set(reference.columns) & set(current.columns)
    specs = {s.name: s for s in features if s.name in both}
    num = [c for c, s in specs.items() if s.kind == "numeric"]
    cat = [c for c, s in specs.items() if s.kind == "categorical"]
    if has_prediction:
        num = [*num, PREDICTION_COLUMN]
    columns = num + cat
    ref = _sample(reference[columns], max_rows, seed).copy()
    cur = _sample(current[columns], max_rows, seed).copy()
    for frame in (ref, cur):
        frame[num] = frame[num].astype("float64")
        for c in cat:
            frame[c] = frame[c].astype("object").where(frame[c].notna(), None)

    _register_methods()
    methods = {c: drift_method(s) for c, s in specs.items()}
    if has_prediction:
        methods[PREDICTION_COLUMN] = NUMERIC_METHOD
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    preset = DataDriftPreset(
        drift_share=drift_share,
        per_column_method={c: m.name for c, m in methods.items()},
        per_column_threshold={c: m.threshold for c, m in methods.items()},
    )
    report = Report([preset], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    per_column = _value_drifts(snapshot.dict(), {c: s.unit for c, s in specs.items()})
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


def _abs_wasserstein(reference: pd.Series, current: pd.Series, _type, threshold: float):
    from scipy.stats import wasserstein_distance

    score = float(wasserstein_distance(reference, current))
    return score, score >= threshold


def _rel_wasserstein(reference: pd.Series, current: pd.Series, _type, threshold: float):
    from scipy.stats import wasserstein_distance

    level = max(abs(float(reference.mean())), 1e-9)
    score = float(wasserstein_distance(reference, current)) / level
    return score, score >= threshold


def _register_methods() -> None:
    """Register the two unit-aware methods with Evidently (once; at first use, not at import)."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTest,
        _registered_stat_tests,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType

    for name, label, func, threshold in (
        ("abs_wasserstein", "Wasserstein distance (feature units)", _abs_wasserstein, 0.05),
        ("rel_wasserstein", "Wasserstein distance / reference mean", _rel_wasserstein, 0.25),
    ):
        if name not in _registered_stat_tests:
            register_stattest(
                StatTest(name, label, [ColumnType.Numerical], default_threshold=threshold), func
            )


def _value_drifts(snapshot: dict, units: dict[str, Unit]) -> dict[str, ColumnDrift]:
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
            unit=units.get(m["column"]),
        )
        for metric_id, m in by_metric.items()
    }
