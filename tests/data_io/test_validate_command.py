"""``otd-risk validate`` and the summary it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import factories as f
import pandas as pd
import pytest
from typer.testing import CliRunner

from data.load import load_dataset
from data.summary import summarize
from otd_risk.cli import app
from otd_risk.settings import get_settings

OTD_RISK = Path(sys.executable).with_name("otd-risk")


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    for key in ("OTD_RISK_DATA", "OTD_RISK_TIMEZONE", "OTD_RISK_LATE_GRACE_DAYS"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_summary_figures(tmp_path):
    dataset = load_dataset(f.write_csv(tmp_path / "d", f.tables()), tz="Asia/Shanghai")
    summary = summarize(dataset)
    assert summary.rows == {"orders": 4, "order_stages": 4, "purchase_orders": 3, "capacity": 4}
    assert summary.tables_absent == []
    # 00042 delivered 2 days after its due date, 00043 a day early, 00044 open, 00045 cancelled.
    assert (summary.orders_open, summary.orders_delivered, summary.orders_cancelled) == (1, 2, 1)
    assert summary.orders_late == 1 and summary.late_rate == 0.5
    assert summary.first_created_at == pd.Timestamp("2024-03-01T00:00Z")
    assert summary.snapshot_time == pd.Timestamp("2024-03-12T10:00Z")
    assert summarize(dataset, grace_days=2).late_rate == 0.0


def test_summary_without_optional_tables_or_deliveries(tmp_path):
    orders = f.orders().assign(delivered_at="")
    dataset = load_dataset(f.write_csv(tmp_path / "d", {"orders": orders}))
    summary = summarize(dataset)
    assert summary.tables_absent == ["order_stages", "purchase_orders", "capacity"]
    assert summary.late_rate is None and summary.orders_delivered == 0
    assert summary.orders_open == 3


def test_cli_prints_the_summary(tmp_path):
    folder = f.write_csv(tmp_path / "d", f.tables())
    result = CliRunner().invoke(app, ["validate", "--data", str(folder), "--tz", "Asia/Shanghai"])
    assert result.exit_code == 0, result.output
    for text in ("conforms to the contract", "orders rows", "Asia/Shanghai", "50.0%"):
        assert text in result.stdout


def test_cli_reads_defaults_from_settings(tmp_path, monkeypatch):
    folder = f.write_csv(tmp_path / "d", f.tables())
    monkeypatch.setenv("OTD_RISK_DATA", str(folder))
    monkeypatch.setenv("OTD_RISK_LATE_GRACE_DAYS", "2")
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "grace 2 d" in result.stdout and "0.0%" in result.stdout


def test_cli_without_data_names_the_fix():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "pass --data DIR|URL or set OTD_RISK_DATA" in result.stderr


def test_cli_contract_error_exits_2_without_traceback(tmp_path):
    data = f.with_value(f.tables(), "order_stages", "stage", 2, "packing")
    folder = f.write_csv(tmp_path / "d", data)
    run = subprocess.run(
        [str(OTD_RISK), "validate", "--data", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr + run.stdout
    assert "table 'order_stages', column 'stage'" in run.stderr
    # The file line (the header is line 1) and the order, not the row's position from 0.
    assert "file line 4 (order_id '00043'): 'packing'" in run.stderr


def test_cli_data_source_error_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no such folder" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_on_an_empty_orders_table(tmp_path):
    folder = f.write_csv(tmp_path / "d", {"orders": f.orders().iloc[:0]})
    result = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert result.exit_code == 0, result.output
    assert "n/a (no orders)" in result.stdout
