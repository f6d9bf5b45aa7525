"""``otd-risk import scms`` end to end: the real export to a folder that loads and validates."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from data.load import load_dataset
from otd_risk.cli import app

runner = CliRunner()


def test_import_scms_writes_a_valid_dataset(scms_zip, tmp_path):
    out = tmp_path / "scms"
    result = runner.invoke(
        app,
        ["import", "scms", "--src", str(scms_zip), "--out", str(out), "--due-from", "2010-01-01"],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "wrote 7293 orders" in text
    assert "due_date before 2010-01-01 (due_from) │ 3003" in text
    assert "po_sent_to_vendor │ 3637" in text
    assert "PO Sent to Vendor Date where known, else PQ First Sent to Client Date" in text

    dataset = load_dataset(out)  # validates every contract rule
    assert len(dataset.orders) == 7293
    row = dataset.orders.set_index("order_id").loc["52973"]
    assert row["created_at"] == pd.Timestamp("2014-10-09", tz="UTC")
    assert row["due_date"] == pd.Timestamp("2015-07-24")
    assert row["vendor"] == "PHARMACY DIRECT"
    assert "freight_cost_usd" not in dataset.orders.columns


def test_import_scms_parquet_keeps_numbers_typed(scms_zip, tmp_path):
    out = tmp_path / "scms"
    result = runner.invoke(
        app, ["import", "scms", "--src", str(scms_zip), "--out", str(out), "--format", "parquet"]
    )
    assert result.exit_code == 0, result.output
    dataset = load_dataset(out)
    assert len(dataset.orders) == 10_296
    assert dataset.orders["line_item_value"].dtype == "float64"


def test_import_of_a_missing_file_says_what_to_pass(tmp_path):
    result = runner.invoke(
        app, ["import", "scms", "--src", str(tmp_path / "nope.zip"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "--src" in result.output
