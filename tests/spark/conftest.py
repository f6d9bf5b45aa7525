"""Spark fixtures: one ``local[2]`` session for every Spark test (start-up costs seconds), a
small simulated world written as Parquet, and a champion trained on it by
``otd-risk train --engine spark`` (Spark builds the training set, the fit is local), in a real
MLflow store under a temporary project home."""

from __future__ import annotations

from pathlib import Path

import pytest
from spark_helpers import MASTER, spark_cli_env
from typer.testing import CliRunner

from data.simulate import simulate, write_world

SPARK_ORDERS = 4000
SPARK_SEED = 13


@pytest.fixture(scope="session")
def spark():
    from features.spark_features import spark_session

    session = spark_session(MASTER, app_name="otd-risk-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 orders over two years as Parquet tables (about 100 open at the snapshot)."""
    world = simulate(SPARK_ORDERS, seed=SPARK_SEED)
    return write_world(world, tmp_path_factory.mktemp("spark") / "world", fmt="parquet")


@pytest.fixture(scope="session")
def local_dataset(spark_world_dir: Path):
    """The world as the local path loads it."""
    from data.load import load_dataset

    return load_dataset(spark_world_dir)


@pytest.fixture(scope="session")
def spark_home(spark, spark_world_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home whose champion ``otd-risk train --engine spark`` trained."""
    from otd_risk.cli import app
    from otd_risk.settings import get_settings

    home = tmp_path_factory.mktemp("spark_home")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["train", "--engine", "spark", "--master", MASTER, "--data", str(spark_world_dir)],
            env=spark_cli_env(home),
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture(scope="session")
def champion(spark_home: Path):
    from otd_risk.settings import Settings
    from training.registry import load_champion

    settings = Settings(
        home=spark_home, mlflow_tracking_uri=f"sqlite:///{spark_home.resolve() / 'mlflow.db'}"
    )
    return load_champion(settings)
