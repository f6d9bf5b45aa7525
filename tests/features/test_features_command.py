"""``otd-risk features`` writes the features of the open orders to Parquet or CSV."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from data.dataset import open_orders
from data.load import write_dataset
from otd_risk.cli import app


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_features_command_writes_open_orders(sim_world, tmp_path, suffix):
    data_dir = write_dataset(sim_world.dataset(), tmp_path / "data", "csv")
    as_of = "2024-06-01T00:00:00+00:00"
    out = tmp_path / f"features{suffix}"
    result = CliRunner().invoke(
        app, ["features", "--data", str(data_dir), "--as-of", as_of, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    expected = open_orders(sim_world.dataset().orders, pd.Timestamp(as_of))
    assert sorted(frame["order_id"]) == sorted(expected["order_id"])
    assert {"slack_days", "remaining_planned_days", "ctx_supplier_id"} <= set(frame.columns)


def test_features_command_refuses_an_unknown_format(sim_world, tmp_path):
    data_dir = write_dataset(sim_world.dataset(), tmp_path / "data", "csv")
    result = CliRunner().invoke(
        app, ["features", "--data", str(data_dir), "--out", str(tmp_path / "f.xlsx")]
    )
    assert result.exit_code == 2
    assert ".parquet or .csv" in result.output
