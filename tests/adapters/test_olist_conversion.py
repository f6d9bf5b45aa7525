"""benchmarks/real_olist.py's mapping of the Olist orders file into the contract: a few rows in
the file's own layout (Kaggle's ISO timestamps and the same re-saved by a spreadsheet) must load
as a conforming dataset, cancelled orders neither open nor late, out-of-order milestones left
empty and counted, and the plain model's columns must see nothing after as_of."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import real_olist  # noqa: E402 - the benchmark's mapping and hand-made columns

from data.load import load_dataset  # noqa: E402

HEADER = (
    "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,"
    "order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date"
)
ROWS = [
    # on time, ISO (Kaggle)
    "a1,c1,delivered,2017-10-02 10:56:33,2017-10-02 11:07:15,2017-10-04 19:55:00,"
    "2017-10-10 21:25:13,2017-10-18 00:00:00",
    # late, re-saved by a spreadsheet
    "a2,c2,delivered,10/3/2017 9:00,10/3/2017 10:00,10/9/2017 8:00,10/25/2017 12:00,"
    "10/20/2017 0:00",
    # cancelled after approval
    "a3,c3,canceled,2017-10-04 08:00:00,2017-10-04 09:00:00,,,2017-10-30 00:00:00",
    # handed to the carrier before it was approved: the warehouse start is left empty
    "a4,c4,delivered,2017-10-05 08:00:00,2017-10-07 09:00:00,2017-10-06 10:00:00,"
    "2017-10-12 10:00:00,2017-10-28 00:00:00",
    # still with the carrier at the export
    "a5,c5,shipped,2017-10-20 08:00:00,2017-10-20 09:00:00,2017-10-21 10:00:00,,"
    "2017-11-05 00:00:00",
]


@pytest.fixture()
def dataset(tmp_path):
    src = tmp_path / "olist_orders_dataset.csv"
    src.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    counts = real_olist.to_contract(src, tmp_path / "olist")
    assert counts == {"orders": 5, "cancelled": 1, "timestamps out of order, left empty": 1}
    return load_dataset(tmp_path / "olist")


def test_the_export_loads_as_a_conforming_dataset(dataset):
    orders = dataset.orders.set_index("order_id")
    assert orders.loc["a2", "created_at"] == pd.Timestamp("2017-10-03 09:00", tz="UTC")
    assert orders.loc["a2", "due_date"] == pd.Timestamp("2017-10-20")
    assert orders.loc["a1", "delivered_at"] == pd.Timestamp("2017-10-10 21:25:13", tz="UTC")
    assert orders.loc["a3", "cancelled_at"] == pd.Timestamp("2017-10-04 09:00", tz="UTC")
    assert pd.isna(orders.loc["a3", "delivered_at"]) and pd.isna(orders.loc["a5", "delivered_at"])
    stages = dataset.order_stages.set_index(["order_id", "stage"])
    assert pd.isna(stages.loc[("a4", "warehouse"), "started_at"])
    assert stages.loc[("a4", "warehouse"), "completed_at"] == pd.Timestamp(
        "2017-10-06 10:00", tz="UTC"
    )
    assert stages.loc[("a2", "shipping"), "started_at"] == pd.Timestamp(
        "2017-10-09 08:00", tz="UTC"
    )


def test_hand_made_columns_see_only_what_was_known_at_as_of(dataset):
    queries = pd.DataFrame(
        {
            "order_id": ["a2", "a2", "a5"],
            "as_of": pd.to_datetime(
                ["2017-10-05 00:00", "2017-10-26 00:00", "2017-10-20 12:00"], utc=True
            ),
        }
    )
    f = real_olist.hand_made(dataset, queries)
    # Before the hand-over: approved, not yet with the carrier.
    assert f.loc[0, "confirmation_done"] == 1.0 and f.loc[0, "warehouse_done"] == 0.0
    assert np.isnan(f.loc[0, "warehouse_days"]) and np.isnan(f.loc[0, "days_since_carrier"])
    assert f.loc[0, "to_due"] == pytest.approx(15.0)
    # On 10-05 no order had been delivered yet; by 10-26, a1 (on time), a4 (on time) and a2
    # itself (late, delivered 10-25) had: one of three late.
    assert np.isnan(f.loc[0, "recent_late_rate"])
    assert f.loc[1, "recent_late_rate"] == pytest.approx(1 / 3)
    assert f.loc[1, "warehouse_days"] == pytest.approx(6 - 1 / 24)
    # a5 at 10-20 12:00: approved at 09:00, the carrier's 10-21 hand-over is in its future.
    assert f.loc[2, "confirmation_done"] == 1.0 and f.loc[2, "warehouse_done"] == 0.0
