"""Training end to end on a simulated world, against a real MLflow SQLite store in tmp_path:
honest metrics, the registry and its champion, the promotion gate, a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from data.simulate import simulate
from otd_risk.settings import Settings
from training.registry import load_champion
from training.train import train_model

pytestmark = pytest.mark.slow  # three trainings on a 20,000-order world: ~1 minute

WORLD_ORDERS = 20_000


@pytest.fixture(scope="module")
def world():
    return simulate(WORLD_ORDERS, seed=11)


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory):
    """v1: the real model; v2: a deliberately worse one (a tenth of the data, one tree);
    v3: the same worse one with force."""
    home = tmp_path_factory.mktemp("otd-home")
    settings = Settings(home=home)
    dataset = world.dataset()
    good = train_model(dataset, settings=settings)
    weak = dict(lgbm_params={"num_boost_round": 1}, train_fraction=0.1)
    refused = train_model(dataset, settings=settings, **weak)
    forced = train_model(dataset, settings=settings, force=True, **weak)
    return settings, good, refused, forced


def test_model_beats_every_baseline_on_the_same_window(runs):
    _, good, _, _ = runs
    m = {k: v["pr_auc"] for k, v in good.metrics.items()}
    print("validation PR AUC", m, "gains", good.gains)
    # Seen (deterministic) on this world: otd_risk 0.747, logistic regression 0.733, planner's
    # rule 0.593, typical durations 0.550, cell rate 0.482. Gains: +0.014 over the logistic
    # regression (95% interval +0.005..+0.023, bootstrap over orders), +0.15..+0.26 over the
    # rest. The logistic regression sees the same (new) history and duration features, which
    # lifted it more than the trees: asserted conservatively, +0.005 with the interval above
    # zero over it, +0.10 over the rules and the cell rate.
    assert set(good.gains) == {"typical_durations", "cell_rate", "logistic", "planner_rule"}
    for base in ("typical_durations", "cell_rate", "planner_rule"):
        assert m["otd_risk"] - m[base] > 0.10, base
        assert good.gains[base]["ci_low"] > 0.05, base
    gain = good.gains["logistic"]
    assert gain["gain"] == pytest.approx(m["otd_risk"] - m["logistic"])
    assert gain["gain"] > 0.005
    assert gain["ci_low"] > 0.0
    assert good.metrics["otd_risk"]["roc_auc"] > good.metrics["logistic"]["roc_auc"]
    assert good.beaten_by == [] and "beats every baseline" in good.decision


def test_risk_is_calibrated_on_the_validation_window(runs):
    _, good, _, _ = runs
    # Seen 0.035 here (0.057 before the refit with cross-fitted calibration and settled labels),
    # though this window's late rate (0.41) is far above the training orders' average.
    print(f"ECE {good.metrics['otd_risk']['ece']:.3f}, recent quarter {good.recent_ece}")
    assert good.metrics["otd_risk"]["ece"] < 0.05
    # The most recent quarter of the window (seen 0.062; the logistic regression 0.069): worse
    # than overall, as the late rate climbs into the peak season faster than any history says.
    assert good.recent_ece["otd_risk"] < 0.10
    horizons = good.by_horizon["otd_risk"]
    assert horizons.loc["all", "n"] == good.n_examples["validation"]
    assert (
        horizons.loc[["overdue", "0-3", "4-7", "8-14", "15+"], "n"].sum()
        == (good.n_examples["validation"])
    )


def test_registry_holds_versions_and_the_gate_decides(runs):
    settings, good, refused, forced = runs
    assert (good.version, refused.version, forced.version) == ("1", "2", "3")
    assert good.promoted and "no champion yet" in good.decision
    assert not refused.promoted and "NOT promoted" in refused.decision
    assert refused.new_score < refused.champion_score
    # One tree on a tenth of the data loses to the baselines too, and the gate says which.
    assert "logistic" in refused.beaten_by and "logistic regression" in refused.decision
    assert forced.promoted and "FORCED" in forced.decision
    client = MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    assert str(champion.version) == "3"
    run = client.get_run(refused.run_id)
    assert run.data.tags["gate.promoted"] == "False"
    assert run.data.metrics["gate.champion_score"] == pytest.approx(refused.champion_score)
    assert run.data.metrics["gate.new_score"] == pytest.approx(refused.new_score)
    assert run.data.params["gate.metric"] == "pr_auc"
    assert len(run.data.tags["dataset_fingerprint"]) == 16
    assert run.data.tags["contract_version"] == "1"


def test_run_logs_metrics_of_every_model_and_horizon_and_the_artifacts(runs):
    settings, good, _, _ = runs
    client = MlflowClient(settings.tracking_uri)
    metrics = client.get_run(good.run_id).data.metrics
    for model in ("otd_risk", "typical_durations", "cell_rate", "planner_rule", "logistic"):
        for horizon in ("all", "0-3", "4-7", "8-14", "15plus"):
            assert f"{model}.{horizon}.pr_auc" in metrics
    assert metrics["otd_risk.all.pr_auc"] == pytest.approx(good.metrics["otd_risk"]["pr_auc"])
    assert metrics["otd_risk.ece_recent_quarter"] == pytest.approx(good.recent_ece["otd_risk"])
    assert metrics["gain_vs_cell_rate.pr_auc"] == pytest.approx(good.gains["cell_rate"]["gain"])
    params = client.get_run(good.run_id).data.params
    assert params["capacity"] == good.capacity and params["gate.beaten_by"] == "none"
    files = {a.path for a in client.list_artifacts(good.run_id)}
    assert {"feature_registry.json", "plots", "metrics", "reference"} <= files
    plots = {a.path for a in client.list_artifacts(good.run_id, "plots")}
    assert plots == {
        f"plots/{n}.png" for n in ("calibration", "roc_pr", "importance_by_stage", "shap_summary")
    }
    registry = json.loads(mlflow.artifacts.load_text(f"runs:/{good.run_id}/feature_registry.json"))
    assert {"name", "stage", "template", "template_zh", "kind"} <= set(registry["features"][0])
    assert str(settings.artifact_root) in client.get_run(good.run_id).info.artifact_uri


def test_champion_loads_and_scores_in_a_fresh_process(runs, world):
    settings, _, _, forced = runs
    from features.build import build_features

    dataset = world.dataset()
    open_ids = dataset.orders["order_id"][dataset.orders["delivered_at"].isna()].head(20)
    loaded = load_champion(settings)
    feats = build_features(
        dataset,
        dataset.orders[dataset.orders["order_id"].isin(open_ids)],
        dataset.snapshot_time(),
        **loaded.risk_model.feature_options(dataset.orders.columns),
    )
    path = settings.home / "open.parquet"
    assert loaded.version == forced.version and loaded.run_id == forced.run_id
    feats[loaded.risk_model.feature_names].to_parquet(path)
    script = (
        "import mlflow, pandas as pd, sys\n"
        f"m = mlflow.pyfunc.load_model('models:/{settings.model_name}@champion')\n"
        f"out = m.predict(pd.read_parquet({str(path)!r}))\n"
        "print(out['risk'].round(8).tolist())\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=settings.home,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    risks = json.loads(done.stdout.strip().splitlines()[-1])
    expected = loaded.risk_model.predict_risk(feats)
    np.testing.assert_allclose(risks, expected, atol=1e-7)


def test_risk_is_calibrated_within_five_points_on_a_bigger_world():
    """ECE < 0.05 on a 60,000-order world (seen 0.028), same split and fit as train_model."""
    from features.registry import feature_specs
    from features.training_set import build_training_set
    from training.evaluate import classification_metrics
    from training.fit import fit_risk_model, time_split

    dataset = simulate(60_000, seed=7).dataset()
    cutoff = dataset.snapshot_time()
    frame = build_training_set(dataset, cutoff)
    specs = feature_specs(dataset)
    split = time_split(frame, cutoff, Settings().validation_days)
    train, valid = frame.iloc[split.train], frame.iloc[split.valid]
    model = fit_risk_model(
        train,
        feature_names=[s.name for s in specs],
        categorical=[s.name for s in specs if s.kind == "categorical"],
        stage_map={s.name: s.stage for s in specs},
    )
    metrics = classification_metrics(valid["late"].to_numpy(), model.predict_risk(valid))
    print(f"60,000 orders: ECE {metrics['ece']:.3f}")
    assert metrics["ece"] < 0.05


def test_champion_loading_says_when_the_environment_differs_from_the_models_pins(
    runs, caplog, tmp_path
):
    """MLflow's requirement check is replaced by one on the model's own pins (it read every
    installed package's file list): a matching environment loads silently, a different one is
    named, package by package, with the fix."""
    settings = runs[0]
    from mlflow.artifacts import download_artifacts

    from training.registry import _load_risk_model, requirement_mismatches

    uri = f"models:/{settings.model_name}@champion"
    local = Path(download_artifacts(uri, dst_path=str(tmp_path / "model")))
    assert requirement_mismatches(local / "requirements.txt") == []
    with caplog.at_level("WARNING", logger="otd_risk.training"):
        load_champion(settings)
    assert not caplog.records
    # The same model, saved by an environment with other versions.
    pins = local / "requirements.txt"
    pins.write_text("lightgbm==0.0.1\nnot-a-package==1.0\n# a comment\npandas\n", encoding="utf-8")
    import lightgbm

    assert requirement_mismatches(pins) == [
        ("lightgbm", "0.0.1", lightgbm.__version__),
        ("not-a-package", "1.0", None),
    ]
    with caplog.at_level("WARNING", logger="otd_risk.training"):
        model = _load_risk_model(str(local))
    assert model.feature_names == load_champion(settings).risk_model.feature_names
    (said,) = [r.getMessage() for r in caplog.records]
    assert "lightgbm==0.0.1" in said and f"lightgbm {lightgbm.__version__}" in said
    assert "not-a-package not installed" in said and "requirements.lock" in said
