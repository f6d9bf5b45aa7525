"""One monitoring summary model (``monitoring.summary.MonitoringSummary``) for the files, the
MLflow run, the CLI and ``GET /v1/monitoring``: nothing the monitor writes is dropped by the API,
and a summary written before the newer fields still reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.registry import FEATURES
from monitoring.monitor import monitor
from monitoring.status import Thresholds
from monitoring.summary import LATEST_SUMMARY, MonitoringSummary
from otd_risk.settings import Settings

SPECS = [f for f in FEATURES if f.name in ("slack_days", "supplier_ontime_rate_90d", "priority")]


def _result():
    rng = np.random.default_rng(4)
    n = 1500

    def frame(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "order_id": [f"o{i}" for i in range(n)],
                "slack_days": rng.normal(10, 4, n),
                "supplier_ontime_rate_90d": np.clip(rng.beta(8, 2, n) - shift, 0, 1),
                "priority": rng.choice(["normal", "rush"], n),
                "risk": rng.beta(2, 5, n),
                "predicted_days_late": rng.normal(0, 2, n),
                "days_late_p10": -3.0,
                "days_late_p90": 3.0,
                "days_late_p025": -5.0,
                "days_late_p975": 5.0,
            }
        )

    current = frame(0.2)
    outcomes = pd.DataFrame(
        {
            "order_id": current["order_id"],
            "late": (rng.random(n) < current["risk"]).astype(int),
            "days_late": rng.normal(0, 2, n),
        }
    )
    return monitor(
        reference=frame(0.0),
        current=current,
        outcomes=outcomes,
        features=SPECS,
        model_version="3",
        reference_pr_auc=0.5,
        thresholds=Thresholds(),
        runs=["r1", "r2"],
        since="2024-05-01 00:00:00+00:00",
    )


def test_the_summary_is_the_model_with_every_figure(tmp_path):
    result = _result()
    summary = result.summary()
    assert isinstance(summary, MonitoringSummary)
    body = summary.model_dump(mode="json")
    assert body["since"] == "2024-05-01 00:00:00+00:00" and body["runs"] == ["r1", "r2"]
    assert body["dataset_drift"] is result.drift.dataset_drift
    drift = body["drift"]
    assert set(drift) == {"slack_days", "supplier_ontime_rate_90d", "priority"}
    assert drift["supplier_ontime_rate_90d"]["drifted"] is True
    assert {n: d["unit"] for n, d in drift.items()} == {
        "slack_days": "days",
        "supplier_ontime_rate_90d": "rate",
        "priority": "category",
    }
    realised = body["realised"]
    assert realised["n_matured"] == 1500 and realised["n_delivered"] == 1500
    assert realised["coverage_80"] == pytest.approx(result.realised.coverage_80)
    assert len(realised["calibration_by_decile"]) == 10
    assert set(realised["calibration_by_decile"][0]) == {"decile", "mean_risk", "late_rate", "n"}
    assert MonitoringSummary.model_validate(body) == summary


def _serve(home, text: str) -> dict:
    from serving.app import ServeOptions, create_app
    from serving.keys import create_key
    from serving.store import home_store

    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    path = home / LATEST_SUMMARY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    key = create_key(home_store(home), "reader", "summary-test").key
    app = create_app(settings, ServeOptions(reload_seconds=0, load_data=False))
    with TestClient(app) as client:
        response = client.get("/v1/monitoring", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_api_serves_every_field_the_monitor_wrote(tmp_path):
    written = _result().summary().model_dump(mode="json")
    body = _serve(tmp_path / "home", json.dumps(written, indent=2))
    # Before one model, the API dropped since, runs and dataset_drift.
    assert body == written


def test_a_summary_written_before_the_newer_fields_still_reads(tmp_path):
    old = {
        "status": "ok",
        "reasons": ["no drift and realised accuracy holds"],
        "model_version": "1",
        "generated_at": "2026-11-01T02:00:00+00:00",
        "since": None,
        "runs": ["r1"],
        "drift": {
            "slack_days": {
                "score": 0.2,
                "drifted": False,
                "method": "abs_wasserstein",
                "threshold": 1.0,
            }
        },
        "drifted_share": 0.0,
        "dataset_drift": False,
        "prediction_drift": {"score": 0.01, "drifted": False},
        "realised": {
            "n_matured": 0,
            "n_late": 0,
            "roc_auc": None,
            "pr_auc": None,
            "brier": None,
            "reference_pr_auc": 0.6,
            "calibration_by_decile": [],
        },
    }
    body = _serve(tmp_path / "home", json.dumps(old))
    assert body["drift"]["slack_days"]["unit"] is None
    assert body["realised"]["n_delivered"] == 0 and body["realised"]["mae_days"] is None
    assert {k: body[k] for k in old if k not in ("drift", "realised")} == {
        k: v for k, v in old.items() if k not in ("drift", "realised")
    }
