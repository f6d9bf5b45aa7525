"""The SCMS adapter on the real export: hand-checked rows, drop counts, no leaking column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.adapters.base import snake_case
from data.adapters.scms import EXTRA_COLUMNS, FALLBACK_LEAD_DAYS, LEAKING_COLUMNS, SCMS

UTC = "UTC"


def _row(dataset, order_id: str) -> pd.Series:
    rows = dataset.orders[dataset.orders["order_id"] == order_id]
    assert len(rows) == 1
    return rows.iloc[0]


# Read by eye from the CSV (rows ID 52973, 86258 and 1).
HAND_CHECKED = {
    # A direct drop with a PO date: created_at is the PO date, not the earlier quote (9/11/14).
    "52973": {
        "created_at": pd.Timestamp("2014-10-09", tz=UTC),
        "due_date": pd.Timestamp("2015-07-24"),
        "delivered_at": pd.Timestamp("2015-07-24", tz=UTC),
        "customer_id": "South Africa",
        "product_id": "Zidovudine 300mg, tablets, 60 Tabs",
        "plant_id": "Direct Drop",
        "quantity": 7.0,
        "vendor": "PHARMACY DIRECT",
        "shipment_mode": "Truck",
        "vendor_inco_term": "DDP",
        "line_item_value": 126.22,
        "pack_price": 18.03,
        "first_line_designation": "No",
        "project_code": "116-ZA-T30",
        "created_at_source": "po_sent_to_vendor",
    },
    # From a regional warehouse: no PO date ("N/A - From RDC"), so the quote date 6/3/09.
    "86258": {
        "created_at": pd.Timestamp("2009-06-03", tz=UTC),
        "due_date": pd.Timestamp("2009-11-30"),
        "delivered_at": pd.Timestamp("2009-11-22", tz=UTC),
        "customer_id": "Sudan",
        "plant_id": "From RDC",
        "quantity": 100.0,
        "vendor": "SCMS from RDC",
        "vendor_inco_term": None,  # "N/A - From RDC" is a placeholder
        "dosage": None,  # "N/A"
        "dosage_form": "Test kit",
        "unit_of_measure_per_pack": 25.0,
        "manufacturing_site": "Standard Diagnostics, Korea",
        "created_at_source": "quote_sent_to_client",
    },
    # Neither date ("Date Not Captured", "Pre-PQ Process"): due 2-Jun-06 minus 161 days.
    "1": {
        "created_at": pd.Timestamp("2005-12-23", tz=UTC),
        "due_date": pd.Timestamp("2006-06-02"),
        "customer_id": "Côte d'Ivoire",
        "quantity": 19.0,
        "line_item_value": 551.0,
        "created_at_source": f"due_minus_{FALLBACK_LEAD_DAYS}_days",
    },
}


@pytest.mark.parametrize("order_id", sorted(HAND_CHECKED))
def test_hand_checked_rows(scms_dataset, order_id):
    row = _row(scms_dataset, order_id)
    for column, expected in HAND_CHECKED[order_id].items():
        if expected is None:
            assert pd.isna(row[column]), column
        else:
            assert row[column] == expected, column


def test_every_line_is_counted_kept_or_dropped_by_reason(scms_dataset):
    assert len(scms_dataset.orders) == 10_296
    assert scms_dataset.skipped == {
        "delivered_at before created_at": 24,
        "due_date before created_at's date": 4,
    }
    assert len(scms_dataset.orders) + sum(scms_dataset.skipped.values()) == 10_324
    # By hand: ID 835 has no PO or quote date, so created_at = 17-May-09 - 161 days = 7-Dec-08,
    # after its delivery on 9-Oct-08; ID 13148 was due 14-Jan-14 but its PO went out 6/23/14.
    kept = set(scms_dataset.orders["order_id"])
    assert "835" not in kept
    assert "13148" not in kept


def test_created_at_sources(scms_dataset):
    counts = scms_dataset.orders["created_at_source"].value_counts().to_dict()
    assert counts == {
        "po_sent_to_vendor": 4_587,
        "quote_sent_to_client": 3_792,
        f"due_minus_{FALLBACK_LEAD_DAYS}_days": 1_917,
    }


def test_canonical_dtypes_and_contract(scms_dataset):
    orders = scms_dataset.orders
    assert str(orders["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(orders["delivered_at"].dtype) == "datetime64[ns, UTC]"
    assert str(orders["due_date"].dtype) == "datetime64[ns]"
    assert orders["quantity"].dtype == "float64"
    assert orders["line_item_value"].dtype == "float64"
    assert orders["order_id"].map(type).eq(str).all()
    assert orders["order_id"].is_unique
    assert (orders["due_date"] >= orders["created_at"].dt.tz_localize(None).dt.normalize()).all()
    assert (orders["quantity"] > 0).all()
    assert list(orders.columns[:8]) == [
        "order_id",
        "customer_id",
        "product_id",
        "plant_id",
        "quantity",
        "created_at",
        "due_date",
        "delivered_at",
    ]


def test_late_rate_matches_the_readme(scms_dataset):
    """README: 11.5% of lines late; 2010 onwards with the README's windows base rate 0.144."""
    orders = scms_dataset.orders
    late = orders["delivered_at"].dt.tz_localize(None).dt.normalize() > orders["due_date"]
    assert late.mean() == pytest.approx(0.115, abs=0.002)
    window = orders["due_date"].between("2014-01-01", "2015-06-30")
    assert late[window].mean() == pytest.approx(0.144, abs=0.002)


def test_no_leaking_column_among_the_extra_columns(scms_dataset):
    extras = set(scms_dataset.orders.columns) - {
        "order_id",
        "customer_id",
        "product_id",
        "plant_id",
        "quantity",
        "created_at",
        "due_date",
        "delivered_at",
    }
    assert extras == set(EXTRA_COLUMNS)
    leaking = {snake_case(c) for c in LEAKING_COLUMNS}
    assert not extras & leaking
    for word in ("deliver", "record", "freight", "insurance", "weight", "asn"):
        assert not [c for c in extras if word in c], word
    # No extra column carries a date at all (the delivered date in disguise).
    assert not [c for c in extras if pd.api.types.is_datetime64_any_dtype(scms_dataset.orders[c])]
    # The adapter's declared source columns never include a leaking one.
    sources = {c.source for c in SCMS.extra_columns}
    assert not sources & set(LEAKING_COLUMNS)


def test_due_from_drops_and_counts_older_lines(scms_zip):
    from data.adapters.base import run_adapter

    dataset = run_adapter(SCMS, scms_zip, due_from="2010-01-01")
    assert dataset.orders["due_date"].min() >= pd.Timestamp("2010-01-01")
    assert dataset.skipped["due_date before 2010-01-01 (due_from)"] == 3_003
    assert len(dataset.orders) + sum(dataset.skipped.values()) == 10_324


def test_no_leaking_column_reaches_the_features(scms_dataset):
    """Every extra column as a feature: no leaking column among the feature names or values."""
    from features.build import build_features_at
    from features.registry import feature_specs

    extras = [c for c in EXTRA_COLUMNS if c != "project_code"]
    names = {s.name for s in feature_specs(scms_dataset, extra_order_columns=extras)}
    leaking = {snake_case(c) for c in LEAKING_COLUMNS} | {"delivered_at"}
    assert not names & leaking
    assert {"vendor", "shipment_mode", "line_item_value"} <= names

    orders = scms_dataset.orders.iloc[:500]
    queries = pd.DataFrame({"order_id": orders["order_id"], "as_of": orders["created_at"]})
    frame = build_features_at(scms_dataset, queries, extra_order_columns=extras)
    assert not set(frame.columns) & leaking
    # The extra features are the adapter's columns as given, nothing derived from outcomes.
    assert frame["vendor"].tolist() == orders["vendor"].tolist()
    np.testing.assert_array_equal(frame["line_item_value"], orders["line_item_value"])
