"""Reproducibility, the ``otd-risk train`` command, and an MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from data.simulate import simulate, write_world
from otd_risk.settings import Settings, get_settings
from training.registry import load_champion
from training.train import train_model

SMALL_WORLD = 4_000


@pytest.fixture(scope="module")
def small_world():
    return simulate(SMALL_WORLD, seed=5)


@pytest.mark.slow
def test_same_data_and_seed_give_the_same_metrics(small_world, tmp_path):
    dataset = small_world.dataset()
    first = train_model(dataset, settings=Settings(home=tmp_path / "a"))
    second = train_model(dataset, settings=Settings(home=tmp_path / "b"))
    for model, figures in first.metrics.items():
        for name, value in figures.items():
            assert second.metrics[model][name] == pytest.approx(value, abs=1e-6, nan_ok=True)
    third = train_model(dataset, settings=Settings(home=tmp_path / "c", seed=7))
    assert third.metrics["otd_risk"]["brier"] != first.metrics["otd_risk"]["brier"]


@pytest.mark.slow
def test_train_command_prints_the_table_and_the_decision(small_world, tmp_path, monkeypatch):
    from otd_risk.cli import app

    folder = write_world(small_world, tmp_path / "world")
    monkeypatch.setenv("OTD_RISK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["train", "--data", str(folder)])
        assert result.exit_code == 0, result.output
        assert "planner's rule" in result.output and "logistic regression" in result.output
        assert "v1 promoted to @champion" in result.output
        again = CliRunner().invoke(app, ["train", "--data", str(folder), "--force"])
        assert again.exit_code == 0, again.output
        assert "v2 promoted" in again.output and "--force" in again.output
        bad = CliRunner().invoke(app, ["train", "--data", str(folder), "--cutoff", "2023-01-10"])
        assert bad.exit_code == 2
        assert "too few to train" in bad.output
    finally:
        get_settings.cache_clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and artifacts in tmp_path."""
    port = _free_port()
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start (exit {proc.poll()})")
            time.sleep(0.5)
        yield url, tmp_path
    finally:
        # The server runs its workers in the session we started: stop that group only.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_training_against_an_mlflow_server(small_world, mlflow_server, tmp_path):
    url, root = mlflow_server
    settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=url)
    result = train_model(small_world.dataset(), settings=settings)
    assert result.promoted and result.version == "1"
    loaded = load_champion(settings)
    assert loaded.version == "1" and loaded.run_id == result.run_id
    assert loaded.metrics["pr_auc"] == pytest.approx(result.metrics["otd_risk"]["pr_auc"])
    # Artifacts went through the server into its destination, not under the local home.
    assert any((root / "server-artifacts").rglob("booster.txt"))
    assert not (tmp_path / "home" / "mlartifacts").exists()
