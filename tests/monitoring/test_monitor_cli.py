"""``otd-risk monitor`` and ``otd-risk retrain`` end to end on a small world: real training on a
SQLite MLflow store, real scoring runs in the scoring log, real Evidently, the real API."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from data.load import load_dataset
from data.simulate import simulate, write_world
from otd_risk.cli import app
from otd_risk.settings import Settings, get_settings
from serving.store import home_store

pytestmark = pytest.mark.slow  # two trainings, three retrains, one Evidently report: ~30 s


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """A champion trained 60 days before the snapshot and three scoring runs since, all under a
    temporary home; returns the settings and the dataset folder (as known at the snapshot)."""
    from serving.scoring import record_scoring_run, score_with_features
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    root = tmp_path_factory.mktemp("monitor_cli")
    world = simulate(4000, seed=21)
    folder = write_world(world, root / "world")
    home = root / "home"
    settings = Settings(
        home=home, data=str(folder), mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}"
    )
    dataset = load_dataset(folder, tz="UTC", capacity_horizon_days=14)
    end = dataset.snapshot_time()
    train_model(dataset.cut(end - pd.Timedelta(days=60)), settings=settings)
    champion = load_champion(settings)
    for days_before in (45, 30, 15):
        t = end - pd.Timedelta(days=days_before)
        known = dataset.cut(t)
        scores, features = score_with_features(known, t, champion)
        record_scoring_run(
            open_store(settings.serving_store_url),
            scores,
            model=champion,
            as_of=t,
            dataset=known,
            features=features,
        )
    return settings, folder


@pytest.fixture
def env(project, monkeypatch):
    settings, folder = project
    monkeypatch.setenv("OTD_RISK_HOME", str(settings.home))
    monkeypatch.setenv("OTD_RISK_MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("OTD_RISK_DATA", str(folder))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _api(settings: Settings) -> tuple[TestClient, dict]:
    from serving.app import ServeOptions, create_app
    from serving.keys import create_key

    key = create_key(home_store(settings.home), "reader", "monitor-test").key
    client = TestClient(create_app(settings, ServeOptions(reload_seconds=0, load_data=False)))
    return client, {"Authorization": f"Bearer {key}"}


def test_api_says_404_with_the_fix_before_any_monitor_run(env):
    client, headers = _api(env)
    with client:
        response = client.get("/v1/monitoring", headers=headers)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "no_monitoring_summary"
    assert "otd-risk monitor" in error["message"]


def test_monitor_writes_report_summary_mlflow_run_and_the_api_serves_it(env, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["monitor", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "status:" in result.output

    html = (out / "report.html").read_text()
    assert "<!DOCTYPE html>" in html and "supplier_ontime_rate_90d" in html  # Evidently, no stub
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] in ("ok", "watch", "retrain recommended")
    assert summary["reasons"] and all(isinstance(r, str) for r in summary["reasons"])
    assert len(summary["runs"]) == 3
    drift = summary["drift"]
    assert "supplier_ontime_rate_90d" in drift and len(drift) >= 30
    for figures in drift.values():
        assert isinstance(figures["score"], float) and isinstance(figures["drifted"], bool)
    n_drifted = sum(f["drifted"] for f in drift.values())
    assert summary["drifted_share"] == pytest.approx(n_drifted / len(drift))
    assert set(summary["prediction_drift"]) >= {"score", "drifted"}
    realised = summary["realised"]
    # The runs are 15-45 days old: most of their orders have delivered since.
    assert realised["n_matured"] > 100
    assert 0.5 < realised["roc_auc"] <= 1.0
    assert 0.0 < realised["pr_auc"] <= 1.0
    assert 0.0 < realised["brier"] < 0.25

    runs = mlflow.MlflowClient(env.tracking_uri).search_runs(
        [mlflow.get_experiment_by_name(f"{env.model_name}-monitoring").experiment_id]
    )
    assert runs and runs[0].data.tags["status"] == summary["status"]
    assert runs[0].data.metrics["realised_pr_auc"] == pytest.approx(realised["pr_auc"])

    client, headers = _api(env)
    with client:
        response = client.get("/v1/monitoring", headers=headers)
        unauthorised = client.get("/v1/monitoring")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == summary["status"]
    assert body["drifted_share"] == pytest.approx(summary["drifted_share"])
    assert body["realised"]["n_matured"] == realised["n_matured"]
    assert unauthorised.status_code == 401


def test_retrain_twice_on_the_same_data_keeps_the_champion(env):
    runner = CliRunner()
    first = runner.invoke(app, ["retrain"])
    assert first.exit_code == 0, first.output
    # The steps as `train` shows them (it was silent for 40 s), and no MLflow registry chatter.
    for step in ("building the training set", "fitting LightGBM", "promotion gate"):
        assert step in first.stdout, first.stdout
    for chatter in ("Successfully registered model", "Created version", "Registered model"):
        assert chatter not in first.stderr, first.stderr
    second = runner.invoke(app, ["retrain"])
    assert second.exit_code == 0, second.output
    # Same data, same seed: the second version scores exactly the first's figure; ties keep
    # the incumbent.
    assert "champion unchanged" in second.output, second.output
    assert "NOT promoted" in second.output
