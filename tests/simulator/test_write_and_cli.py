"""Writing a simulated world, cut in time, and the ``otd-risk simulate`` command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from data.load import load_dataset
from data.scenario import Scenario
from data.simulate import simulate, write_world
from otd_risk.cli import app

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _assert_same_tables(loaded, expected) -> None:
    assert sorted(loaded.tables()) == sorted(expected.tables())
    for name, frame in expected.tables().items():
        pd.testing.assert_frame_equal(getattr(loaded, name), frame, check_like=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_as_of_world_loads_back_as_the_cut_full_world(small_world, tmp_path, fmt):
    as_of = "2024-03-01T12:00:00Z"
    folder = write_world(small_world, tmp_path / "w", as_of=as_of, fmt=fmt)
    loaded = load_dataset(folder)
    expected = small_world.full.cut(as_of)
    _assert_same_tables(loaded, expected)
    assert loaded.snapshot_time() <= pd.Timestamp(as_of)
    assert loaded.orders["delivered_at"].isna().sum() > 0  # recent orders open at T
    truth = pd.read_csv(folder / "ground_truth.csv", dtype={"order_id": str})
    assert set(truth["order_id"]) == set(expected.orders["order_id"])
    # The ground truth knows what happens after T: the outcome of orders still open then.
    orders = expected.orders
    open_at_t = orders.loc[
        orders["delivered_at"].isna() & orders["cancelled_at"].isna(), "order_id"
    ]
    assert truth.set_index("order_id").loc[open_at_t, "delivered_at"].notna().mean() > 0.9


def test_small_world_dir_is_the_snapshot(small_world, small_world_dir):
    loaded = load_dataset(small_world_dir)
    _assert_same_tables(loaded, small_world.dataset())
    assert loaded.snapshot_time() == small_world.snapshot
    assert (small_world_dir / "ground_truth.csv").exists()


def test_scenario_files_load(tmp_path):
    assert Scenario.from_file(SCENARIOS / "default.yaml") == Scenario()
    planted = Scenario.from_file(SCENARIOS / "planted.json")
    assert planted.supplier_degradations[0].supplier_id == "S03"
    assert planted.capacity_crunches[0].capacity_factor == 0.3
    assert Scenario.from_file(SCENARIOS / "capacity_crunch.yaml").capacity_crunches
    assert Scenario.from_file(SCENARIOS / "supplier_degradation.yaml").supplier_degradations
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Scenario.from_file(empty) == Scenario()


def test_simulate_command_writes_the_world_it_reports(tmp_path):
    out = tmp_path / "world"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--orders",
            "600",
            "--seed",
            "2",
            "--as-of",
            "2024-06-01",
            "--scenario",
            str(SCENARIOS / "planted.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Simulated 600 orders (seed 2)" in result.output
    world = simulate(600, seed=2, scenario=Scenario.from_file(SCENARIOS / "planted.json"))
    _assert_same_tables(load_dataset(out), world.full.cut("2024-06-01"))
    delivered = world.ground_truth["delivered_at"].notna()
    rate = world.ground_truth.loc[delivered, "late"].mean()
    assert f"late rate {rate:.1%}" in result.output


def test_simulate_command_names_the_fix_for_bad_input(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("capacity_crunches:\n  - {plant_id: PL7, start: 2024-01-01, end: 2024-02-01}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--scenario", str(bad)])
    assert result.exit_code == 2
    assert "PL7" in result.output and "use one of them" in result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--as-of", "soon"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--format", "xlsx"])
    assert result.exit_code == 2 and "csv or parquet" in result.output
