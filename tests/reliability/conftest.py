"""Reliability fixtures: one small trained project home (real training, real MLflow registry on
SQLite, a recorded scoring run, a reader and an admin key). Tests that change a home copy it
first (``reliability_helpers.copy_home``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_helpers import home_settings

from otd_risk.settings import Settings
from serving.store import home_store

RELIABILITY_ORDERS = 3000
RELIABILITY_SEED = 13


@dataclass(frozen=True)
class TrainedHome:
    home: Path
    world_dir: Path
    settings: Settings
    reader_key: str
    admin_key: str
    order_ids: list[str]
    """Ids of the orders open at the snapshot (the ones scored by the recorded run)."""
    planner_key: str = ""


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    from data.load import load_dataset
    from data.simulate import simulate, write_world
    from serving.keys import create_key
    from serving.scoring import record_scoring_run, score_open_orders
    from serving.store import open_store
    from training.registry import load_champion
    from training.train import train_model

    root = tmp_path_factory.mktemp("reliability")
    world_dir = write_world(simulate(RELIABILITY_ORDERS, seed=RELIABILITY_SEED), root / "world")
    home = root / "home"
    settings = home_settings(home, world_dir)
    dataset = load_dataset(world_dir, tz="UTC", capacity_horizon_days=14)
    # Forced: on 3,000 orders the logistic regression matches the trees (the gate keeps the
    # first version out); these tests need a champion to serve, not a gate decision.
    train_model(dataset, settings=settings, force=True)
    loaded = load_champion(settings)
    scores = score_open_orders(dataset, None, loaded)
    record_scoring_run(
        open_store(settings.serving_store_url),
        scores,
        model=loaded,
        as_of=dataset.snapshot_time(),
        dataset=dataset,
    )
    reader = create_key(home_store(home), "reader", "reliability").key
    admin = create_key(home_store(home), "admin", "reliability").key
    planner = create_key(home_store(home), "planner", "reliability").key
    order_ids = scores["order_id"].tolist()
    return TrainedHome(home, world_dir, settings, reader, admin, order_ids, planner)
