"""The model must earn its place: the gate compares it with every baseline, the first version
too, and an export that holds only orders still beats what an analyst would do with them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from data.scenario import Scenario
from data.simulate import simulate, write_world
from otd_risk.settings import Settings
from training.registry import champion_version
from training.train import train_model

pytestmark = pytest.mark.slow

OTD_RISK = Path(sys.executable).with_name("otd-risk")

ADDITIVE = Scenario(
    overload_sensitivity=0.0,
    backlog_elasticity=0.0,
    winter_delay_prob={},
    peak_congestion_prob=0.0,
    supplier_late_prob=(0.15, 0.15),
    noise_sigma=0.6,
)
"""Delays that only add up: no overload threshold, no confirmation backlog, no season, every
supplier alike, more noise. On 3,000 orders (seed 1) the logistic regression wins: PR AUC 0.571
against the trees' 0.534 (seen; deterministic)."""


@pytest.fixture(scope="module")
def additive_world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(
        simulate(3000, seed=1, scenario=ADDITIVE), tmp_path_factory.mktemp("additive")
    )


def _train(world: Path, home: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTD_RISK_", "MLFLOW_"))},
        "OTD_RISK_HOME": str(home),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(OTD_RISK), "train", "--data", str(world), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_where_a_linear_model_wins_the_first_version_is_not_promoted(additive_world_dir, tmp_path):
    home = tmp_path / "home"
    refused = _train(additive_world_dir, home)
    assert refused.returncode == 0, refused.stderr[-2000:]
    out = " ".join(refused.stdout.split())
    assert "registered but NOT promoted" in out
    assert "does not beat the logistic regression" in out  # names the baseline, and its score
    assert "--force" in out and "more history" in out  # and what to try
    # ...but not the tables it has already: the simulated world holds all four.
    assert "more tables" not in out and "order_stages" not in out.split("Try more history")[1]
    settings = Settings(home=home)
    assert champion_version(settings) is None  # the first version too: nothing serves

    forced = _train(additive_world_dir, home, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "FORCED (--force)" in " ".join(forced.stdout.split())
    assert str(champion_version(settings).version) == "2"


def test_an_orders_only_export_beats_the_cell_rate_and_typical_durations(tmp_path):
    """Without stages, purchase orders or capacity (8,000 orders, seed 11). Seen: PR AUC 0.540
    against the cell rate's 0.437 (+0.103, interval +0.053..) and typical lead times' 0.388
    (+0.152, +0.108..); the forecast's MAE 2.48 days against on-plan's 2.71."""
    dataset = simulate(8000, seed=11).dataset()
    dataset = replace(dataset, order_stages=None, purchase_orders=None, capacity=None)
    result = train_model(dataset, settings=Settings(home=tmp_path))
    print("orders only:", result.gains, result.forecast_metrics["forecast"])
    for base in ("cell_rate", "typical_durations"):
        assert result.gains[base]["gain"] > 0.03, base
        assert result.gains[base]["ci_low"] > 0.0, base
    assert "no order_stages table" in result.baseline_notes["typical_durations"]
    assert result.forecast_gains["on_plan"]["ci_low"] > 0.0
