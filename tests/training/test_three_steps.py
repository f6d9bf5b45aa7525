"""Training's three steps on their own: ``evaluate`` measures everything and writes nothing,
``log_run`` writes an evaluation to an MLflow run, ``register_and_gate`` registers the version
and returns the gate's decision (real MLflow SQLite store, a 4,000-order simulated world)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from data.simulate import simulate
from otd_risk.settings import Settings
from training.registry import use_tracking
from training.train import (
    BASELINE_KEYS,
    MODEL_KEYS,
    PLOT_ROWS,
    evaluate,
    fit_forecast,
    fit_model,
    log_run,
    prepare_forecast_data,
    prepare_training_data,
    register_and_gate,
)

pytestmark = pytest.mark.slow  # one training on a small world: ~20 s


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    home = tmp_path_factory.mktemp("three-steps")
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    dataset = simulate(4000, seed=21).dataset()
    t = dataset.snapshot_time()
    data = prepare_training_data(dataset, t, settings, [])
    model = fit_model(dataset, data, settings)
    cut = dataset.cut(t)
    forecast_data = prepare_forecast_data(cut, data, settings, [])
    model.forecast = fit_forecast(model, forecast_data.train, settings, data.split.validation_cut)
    experiment_id = use_tracking(settings, "three-steps")
    evaluation = evaluate(model, data, forecast_data, cut, settings)
    runs_after_evaluate = MlflowClient(settings.tracking_uri).search_runs([experiment_id])
    return settings, experiment_id, model, data, cut, evaluation, runs_after_evaluate


def test_evaluate_measures_everything_and_logs_nothing(steps):
    _, _, _, data, _, evaluation, runs_after_evaluate = steps
    assert runs_after_evaluate == [] and mlflow.active_run() is None
    assert set(evaluation.overall) == set(MODEL_KEYS)
    assert set(evaluation.gains) == set(BASELINE_KEYS)
    for gain in evaluation.gains.values():
        assert gain["ci_low"] <= gain["gain"] <= gain["ci_high"]
    forecast = evaluation.forecast
    assert forecast is not None and set(forecast.gains) == {"on_plan", "typical_durations"}
    assert 0.5 < forecast.metrics["forecast"]["coverage_80"] < 1.0
    assert evaluation.n_examples["validation"] == len(data.valid) == len(evaluation.y)
    assert len(evaluation.plot_rows) == min(len(data.valid), PLOT_ROWS)
    assert set(evaluation.plot_rows.index) <= set(data.valid.index)


def test_log_then_register_and_gate_write_one_run_and_decide(steps):
    settings, experiment_id, model, data, cut, evaluation, _ = steps
    with mlflow.start_run(experiment_id=experiment_id) as run:
        log_run(model, data, evaluation, settings=settings)
        registration = register_and_gate(
            model, data, evaluation, settings=settings, run_id=run.info.run_id, cut=cut
        )
    # The first version has no champion to beat; the baselines it beats on this world.
    assert registration.version == "1"
    assert registration.gate.promoted, registration.gate.text
    logged = MlflowClient(settings.tracking_uri).get_run(run.info.run_id)
    pr_auc = evaluation.overall["otd_risk"]["pr_auc"]
    assert logged.data.metrics["pr_auc"] == pytest.approx(pr_auc)
    assert logged.data.metrics["gate.new_score"] == pytest.approx(pr_auc)
    assert logged.data.params["n_validation"] == str(evaluation.n_examples["validation"])
    assert logged.data.tags["gate.promoted"] == "True"
    assert logged.data.tags["model_version"] == "1"
    gains = {k: logged.data.metrics[f"gain_vs_{k}.pr_auc"] for k in BASELINE_KEYS}
    assert gains == pytest.approx({k: v["gain"] for k, v in evaluation.gains.items()})
    assert np.isfinite(list(gains.values())).all()
