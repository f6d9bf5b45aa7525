"""Serving fixtures: one simulated world, a real model trained on it and registered in a
throw-away MLflow SQLite store, a recorded scoring run, API keys and an in-process client."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

import pytest

from data.dataset import Dataset
from data.simulate import SimulatedWorld, simulate, write_world
from otd_risk.settings import Settings

SERVING_ORDERS = 8000
SERVING_SEED = 5


@dataclass(frozen=True)
class Served:
    """Everything an API test needs."""

    settings: Settings
    world: SimulatedWorld
    dataset: Dataset
    loaded: object  # training.registry.LoadedModel
    scores: object  # the ranked frame of the recorded run
    reader_key: str
    admin_key: str
    store: object  # serving.store.Store: SQLite under the home, or PostgreSQL

    @property
    def feature_options(self) -> dict:
        """What ``features.build`` needs for the served model (its history pairs, extras)."""
        return self.loaded.risk_model.feature_options(self.dataset.orders.columns)


@pytest.fixture(scope="session")
def serving_world() -> SimulatedWorld:
    """8,000 orders (about 250 open at the snapshot: enough for a top 200)."""
    return simulate(SERVING_ORDERS, seed=SERVING_SEED)


@pytest.fixture(scope="session")
def served(request: pytest.FixtureRequest) -> Served:
    """The served project on the SQLite store under its home, or — in modules parametrized with
    ``STORES`` (``indirect=True``) — also on PostgreSQL: the same model and run, recorded in a
    private schema of the test server, with keys of its own."""
    backend = getattr(request, "param", "sqlite")
    on_sqlite = request.getfixturevalue("served_on_sqlite")
    if backend == "sqlite":
        return on_sqlite
    return request.getfixturevalue("served_on_postgresql")


STORES = ["sqlite", "postgresql"]
"""Parametrize a module's ``served`` with these (indirect) to run it on both stores."""


@pytest.fixture(scope="session")
def served_on_postgresql(served_on_sqlite: Served) -> Served:
    from store_helpers import postgres_schema, schema_url

    from serving.keys import create_key
    from serving.scoring import record_scoring_run
    from serving.store import open_store

    with postgres_schema("served") as (base, schema):
        settings = served_on_sqlite.settings.model_copy(
            update={"store_url": schema_url(base, schema)}
        )
        store = open_store(settings.serving_store_url)
        loaded, dataset = served_on_sqlite.loaded, served_on_sqlite.dataset
        record_scoring_run(
            store,
            served_on_sqlite.scores,
            model=loaded,
            as_of=dataset.snapshot_time(),
            dataset=dataset,
        )
        reader = create_key(store, "reader", "tests").key
        admin_key = create_key(store, "admin", "tests").key
        yield replace(
            served_on_sqlite, settings=settings, reader_key=reader, admin_key=admin_key, store=store
        )
        store.engine.dispose()


@pytest.fixture(scope="session")
def served_on_sqlite(
    serving_world: SimulatedWorld, tmp_path_factory: pytest.TempPathFactory
) -> Served:
    """A trained champion (real train_model, real MLflow registry on SQLite), a recorded scoring
    run and two API keys, under a temporary project home."""
    from data.load import load_dataset
    from serving.columns import REASON_LANGS
    from serving.keys import create_key
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    root = tmp_path_factory.mktemp("serving")
    world_dir = write_world(serving_world, root / "world")
    home = root / "home"
    # The store named explicitly: mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which
    # Settings.tracking_uri would otherwise prefer (another test's store).
    settings = Settings(
        home=home,
        data=str(world_dir),
        mlflow_tracking_uri=f"sqlite:///{home.resolve() / 'mlflow.db'}",
    )
    dataset = load_dataset(
        world_dir,
        tz=settings.timezone,
        capacity_horizon_days=settings.capacity_planning_horizon_days,
    )
    train_model(dataset, settings=settings)
    loaded = load_champion(settings)
    # Reasons in both languages, as `otd-risk score` records them.
    scores = score_open_orders(dataset, None, loaded, reason_langs=REASON_LANGS)
    record_scoring_run(
        open_store(settings.serving_store_url),
        scores,
        model=loaded,
        as_of=dataset.snapshot_time(),
        dataset=dataset,
    )
    store = open_store(settings.serving_store_url)
    reader = create_key(store, "reader", "tests").key
    admin = create_key(store, "admin", "tests").key
    return Served(settings, serving_world, dataset, loaded, scores, reader, admin, store)


@pytest.fixture(scope="session")
def explainer(served: Served):
    """The served model's explainer, built once as the server builds it."""
    from serving.explain import Explainer

    return Explainer(served.loaded.risk_model)


@pytest.fixture(scope="session")
def client(served: Served):
    """An in-process client of the app (lifespan run: model and data loaded)."""
    from fastapi.testclient import TestClient

    from serving.app import ServeOptions, create_app

    app = create_app(served.settings, ServeOptions(reload_seconds=0))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def reader(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.reader_key}"}


@pytest.fixture(scope="session")
def admin(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.admin_key}"}


@pytest.fixture
def cli_env(served, monkeypatch, tmp_path):
    """A copy of the served home for the CLI (runs recorded here do not change what other tests
    see): OTD_RISK_HOME and the MLflow URI point at it; yields its path."""
    from otd_risk.settings import get_settings

    home = tmp_path / "home"
    shutil.copytree(served.settings.home, home)
    monkeypatch.setenv("OTD_RISK_HOME", str(home))
    monkeypatch.setenv("OTD_RISK_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
