"""Feature values on a tiny hand-checked dataset, shapes by table, and query checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_factories import tiny_dataset

from features.build import build_features, build_features_at
from features.registry import feature_specs

AS_OF = "2024-03-06 12:00"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    ds = tiny_dataset("full")
    return build_features(
        ds, ["o1", "o2", "o3"], AS_OF, extra_order_columns=["region", "value_usd"]
    )


@pytest.mark.parametrize(
    ("order", "feature", "expected"),
    [
        ("o1", "slack_days", 2.5),  # due 03-08, so late from 03-09 00:00
        ("o1", "quantity_vs_product_norm", 0.5),  # p1 orders known: 10 and 30
        ("o2", "quantity_vs_product_norm", 1.5),
        ("o1", "current_stage", "production"),
        ("o1", "procurement_days_behind", 1.0),  # completed a day after plan
        ("o1", "production_days_behind", 0.5),  # open, planned end 12 h ago
        ("o1", "remaining_planned_days", 0.0),
        ("o2", "remaining_planned_days", 11.5),  # shipping planned 03-18
        ("o2", "plan_margin_days", 3.0),
        ("o2", "open_po_count", 1.0),
        ("o1", "open_po_count", 0.0),
        ("o2", "po_max_days_past_promised", 0.5),
        ("o3", "po_max_days_past_promised", -1.5),
        ("o2", "supplier_ontime_rate_90d", 0.0),  # s2: one late PO received, one known late
        ("o2", "supplier_mean_days_late_90d", 3.0),  # only received POs count for lateness
        ("o3", "supplier_ontime_rate_90d", 1.0),
        ("o2", "plant_open_orders", 2.0),  # o4 does not exist yet
        ("o1", "plant_load_ratio_next_14d", 0.75),
        ("o3", "plant_load_ratio_next_14d", 1.25),
        ("o3", "region", "US"),
        ("o2", "value_usd", 250.0),
    ],
)
def test_hand_checked_values(frame, order, feature, expected):
    value = frame.loc[order, feature]
    if isinstance(expected, float):
        assert value == pytest.approx(expected)
    else:
        assert value == expected


def test_context_names_the_worst_supplier_and_stage(frame):
    assert frame.loc["o2", "ctx_supplier_id"] == "s2"
    assert pd.isna(frame.loc["o1", "ctx_supplier_id"])
    assert frame.loc["o2", "ctx_current_stage"] == "procurement"
    assert frame.loc["o3", "ctx_customer_group"] == "US"  # the region column groups customers
    assert frame.loc["o1", "ctx_due_date"] == "2024-03-08"


@pytest.mark.parametrize("tables", ["orders", "stages", "full"])
def test_columns_follow_the_registry_for_each_table_set(tables):
    ds = tiny_dataset(tables)
    out = build_features(ds, ["o1", "o2"], AS_OF)
    names = [s.name for s in feature_specs(ds)]
    features = [c for c in out.columns if c != "as_of" and not c.startswith("ctx_")]
    assert features == names
    if tables == "orders":
        assert "remaining_planned_days" not in out.columns
        assert "ctx_current_stage" not in out.columns
    assert (
        out[[n for n, s in zip(names, feature_specs(ds), strict=True) if s.kind == "numeric"]]
        .dtypes.eq(np.float64)
        .all()
    )


def test_queries_keep_their_order_and_may_differ_in_as_of():
    ds = tiny_dataset("full")
    queries = pd.DataFrame(
        {
            "order_id": ["o2", "o1", "o2"],
            "as_of": pd.to_datetime(
                ["2024-03-03 00:00", "2024-03-06 12:00", "2024-03-06 12:00"], utc=True
            ),
        }
    )
    out = build_features_at(ds, queries)
    assert list(out["order_id"]) == ["o2", "o1", "o2"]
    assert out["slack_days"].tolist() == pytest.approx([18.0, 2.5, 14.5])
    assert out.loc[0, "open_po_count"] == 1.0 and out.loc[0, "po_max_days_past_promised"] < 0


def test_does_not_mutate_the_dataset():
    ds = tiny_dataset("full")
    before = {name: frame.copy() for name, frame in ds.tables().items()}
    build_features(ds, ["o1", "o2", "o3"], AS_OF)
    for name, frame in ds.tables().items():
        pd.testing.assert_frame_equal(frame, before[name])


@pytest.mark.parametrize(
    ("ids", "as_of", "message"),
    [(["nope"], AS_OF, "not in the dataset"), (["o4"], AS_OF, "before it was created")],
)
def test_bad_queries_are_refused_with_the_fix(ids, as_of, message):
    with pytest.raises(ValueError, match=message):
        build_features(tiny_dataset("orders"), ids, as_of)
