"""Tiny hand-made datasets for the feature tests, in the contract's canonical dtypes."""

from __future__ import annotations

import pytest
from feature_factories import tiny_dataset

from data.dataset import Dataset


@pytest.fixture
def tiny() -> Dataset:
    return tiny_dataset("full")


@pytest.fixture(scope="session")
def sim_world():
    """A small simulated world (every event, including those after its snapshot)."""
    from data.simulate import simulate

    return simulate(800, seed=11)
