"""Drift is judged in each feature's declared unit (``FeatureSpec.unit``), not guessed from its
name: the registry's features keep the methods the name patterns gave them, an extra column is a
plain number whatever it is called, and an older model's specs read without a unit get the one
its name gave then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_factories import tiny_dataset

from features.registry import (
    FEATURES,
    Unit,
    extra_order_specs,
    feature_specs,
    saved_unit,
    unit_read_from_name,
)
from monitoring.drift import METHOD_BY_UNIT, NUMERIC_METHOD, compute_drift, drift_method


def _all_specs():
    dataset = tiny_dataset("full")
    return feature_specs(dataset, rate_pairs=[("plant_id", "priority")])


def test_every_feature_declares_a_unit_whose_method_is_the_one_its_name_gave():
    specs = _all_specs()
    assert len(specs) > len(FEATURES) / 2
    for spec in specs:
        assert spec.unit in Unit.__args__, spec.name
        assert (spec.unit == "category") == (spec.kind == "categorical"), spec.name
        if spec.kind == "numeric":
            # The name patterns monitoring used before units were declared: same method.
            assert drift_method(spec) == METHOD_BY_UNIT[unit_read_from_name(spec.name)], spec.name
    units = {s.name: s.unit for s in specs}
    assert units["slack_days"] == "days"
    assert units["supplier_ontime_rate_90d"] == "rate"
    assert units["late_rate_plant_id__priority"] == "rate"
    assert units["settled_plant_id"] == "count"
    assert units["plant_load_ratio_next_14d"] == "ratio"
    assert units["share_stages_completed"] == "share"
    assert units["current_stage"] == "category"


def test_a_unit_must_be_known_and_match_the_kind():
    spec = FEATURES[0]
    with pytest.raises(ValueError, match="unit 'hours'"):
        type(spec)(**{**spec.to_dict(), "unit": "hours"})
    with pytest.raises(ValueError, match="unit 'category'"):
        type(spec)(**{**spec.to_dict(), "needs": (), "unit": "category"})


def test_an_extra_column_is_a_plain_number_whatever_its_name():
    orders = pd.DataFrame({"handling_days": [1.0, 2.0, 3.0]})
    (spec,) = extra_order_specs(orders, ["handling_days"])
    # Its name reads like days (the old patterns said so); nothing declares it in days.
    assert unit_read_from_name("handling_days") == "days"
    assert spec.unit == "number" and drift_method(spec) == NUMERIC_METHOD
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"handling_days": rng.normal(10.0, 0.2, 2000)})
    cur = pd.DataFrame({"handling_days": rng.normal(10.5, 0.2, 2000)})
    drift = compute_drift(ref, cur, features=[spec]).features["handling_days"]
    # Half a day on a spread of 0.2: drift as a plain number (normed), none in days (< 1).
    assert (drift.method, drift.unit, drift.drifted) == ("wasserstein", "number", True)
    assert drift.score == pytest.approx(2.5, abs=0.3)


def test_specs_saved_without_a_unit_read_with_the_one_their_name_gave():
    assert saved_unit("slack_days", "numeric") == "days"
    assert saved_unit("share_stages_completed", "numeric") == "share"  # the registry's
    assert saved_unit("late_rate_customer_id", "numeric") == "rate"
    assert saved_unit("mean_days_late_plant_id", "numeric") == "days"
    assert saved_unit("settled_product_id", "numeric") == "count"
    assert saved_unit("value_usd", "numeric") == "number"
    assert saved_unit("region", "categorical") == "category"
