"""Shared fixtures: small simulated OTD worlds, built once per test session.

Use these instead of simulating in each test; they are cheap (well under a second) and
deterministic. Never modify their frames in place: copy first.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from data.simulate import (
    CapacityCrunch,
    Scenario,
    SimulatedWorld,
    SupplierDegradation,
    simulate,
    write_world,
)

PLANTED_SUPPLIER = "S03"
PLANTED_SUPPLIER_DATE = dt.date(2024, 1, 1)
CRUNCH_PLANT = "PL2"
CRUNCH_START = dt.date(2024, 5, 1)
CRUNCH_END = dt.date(2024, 6, 30)


@pytest.fixture(scope="session")
def small_world() -> SimulatedWorld:
    """The default scenario, 3,000 orders over two years (about 0.1 s)."""
    return simulate(3000, seed=7)


@pytest.fixture(scope="session")
def small_world_dir(small_world: SimulatedWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_world`` as known at its snapshot, written as CSV tables plus
    ``ground_truth.csv``. Treat the folder as read-only."""
    return write_world(small_world, tmp_path_factory.mktemp("small_world"))


@pytest.fixture(scope="session")
def planted_scenario() -> Scenario:
    """A scenario with two planted causes: supplier ``S03`` degrades from 2024-01-01 and plant
    ``PL2`` runs at 30% capacity from 2024-05-01 to 2024-06-30."""
    return Scenario(
        supplier_degradations=[
            SupplierDegradation(supplier_id=PLANTED_SUPPLIER, date=PLANTED_SUPPLIER_DATE)
        ],
        capacity_crunches=[
            CapacityCrunch(
                plant_id=CRUNCH_PLANT, start=CRUNCH_START, end=CRUNCH_END, capacity_factor=0.3
            )
        ],
    )


@pytest.fixture(scope="session")
def planted_world(planted_scenario: Scenario) -> SimulatedWorld:
    """6,000 orders of ``planted_scenario`` (about 0.2 s): tests that explanations and features
    point at the planted supplier and plant use it."""
    return simulate(6000, seed=11, scenario=planted_scenario)
