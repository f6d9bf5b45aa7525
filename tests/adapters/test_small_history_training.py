"""The training settings an orders-only export with a small, drifting history needs (issue 9):
examples at creation, a validation window sized by orders, an early-stopping floor, recency
weights, excluded features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from otd_risk.settings import Settings
from training.fit import best_round, recency_weights, time_split
from training.train import TrainingDataError, without_excluded


def _frame(rows):
    """rows: (order_id, as_of day, outcome day) in days after 2020-01-01."""
    day0 = pd.Timestamp("2020-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "as_of": [day0 + pd.Timedelta(days=r[1]) for r in rows],
            "outcome_known_at": [day0 + pd.Timedelta(days=r[2]) for r in rows],
        }
    )


def test_examples_at_creation_gives_one_example_per_order_as_of_its_creation(scms_dataset):
    from features.training_set import build_training_set

    every = build_training_set(scms_dataset, "2013-12-31", every_days=30)
    once = build_training_set(scms_dataset, "2013-12-31", examples_at="creation")
    assert once["order_id"].is_unique
    assert set(once["order_id"]) == set(every["order_id"])
    assert len(every) > 3 * len(once)  # lead times of months: many snapshots per line
    created = scms_dataset.orders.set_index("order_id")["created_at"]
    assert (once["as_of"].to_numpy() == created.loc[once["order_id"]].to_numpy()).all()
    assert (once["order_age_days"] == 0).all()


def test_examples_at_is_checked():
    from features.training_set import build_training_set

    with pytest.raises(ValueError, match="'snapshots' or 'creation'"):
        build_training_set(None, None, examples_at="weekly")


def test_validation_window_grows_to_hold_min_orders_and_no_further():
    # Cut-off day 100, window 10 days: only order d (seen day 95) is in it. Orders settle after
    # 30 days, so a window of 3 orders must reach back to day 70 (order b's last example).
    frame = _frame(
        [
            ("a", 10, 40),
            ("a", 40, 40),
            ("b", 60, 90),
            ("b", 70, 90),
            ("c", 80, 100),
            ("d", 95, 99),
            ("e", 97, 130),  # outcome after the cut-off: never validation
        ]
    )
    cutoff = pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=100)
    plain = time_split(frame, cutoff, 10)
    assert frame.iloc[plain.valid]["order_id"].tolist() == ["d"]
    grown = time_split(frame, cutoff, 10, min_orders=3)
    assert grown.validation_cut == cutoff - pd.Timedelta(days=30)
    assert sorted(frame.iloc[grown.valid]["order_id"].unique()) == ["b", "c", "d"]
    assert frame.iloc[grown.train]["order_id"].unique().tolist() == ["a"]
    # Enough orders already: the window stays as long as validation_days says.
    assert time_split(frame, cutoff, 10, min_orders=1).validation_cut == plain.validation_cut


@pytest.mark.parametrize(
    ("scores", "floor", "higher", "expected"),
    [
        ([0.70, 0.60, 0.65, 0.66, 0.64], 0, True, 1),  # early peak kept without a floor
        ([0.70, 0.60, 0.65, 0.66, 0.64], 3, True, 4),  # the best among rounds 3..5
        ([0.70, 0.60, 0.65], 10, True, 3),  # a floor beyond the rounds run: the last
        ([0.30, 0.20, 0.25], 2, False, 2),  # a loss: lower is better
    ],
)
def test_best_round_respects_the_floor(scores, floor, higher, expected):
    assert best_round(scores, floor, higher) == expected


def test_recency_weights_halve_every_half_life():
    frame = _frame([("a", 0, 0), ("b", 0, 365), ("c", 0, 730)])
    assert recency_weights(frame, None) is None
    np.testing.assert_allclose(recency_weights(frame, 365.0), [0.25, 0.5, 1.0])
    with pytest.raises(ValueError, match="> 0"):
        recency_weights(frame, 0)


def test_exclude_features_drops_them_and_refuses_unknown_names(scms_dataset):
    from features.registry import feature_specs

    specs = feature_specs(scms_dataset, ["shipment_mode"])
    kept = without_excluded(specs, Settings(exclude_features=["plant_open_orders"]))
    assert [s.name for s in kept] == [s.name for s in specs if s.name != "plant_open_orders"]
    with pytest.raises(TrainingDataError, match="OTD_RISK_EXCLUDE_FEATURES") as err:
        without_excluded(specs, Settings(exclude_features=["plant_open_order"]))
    assert "plant_open_order," in str(err.value) or "plant_open_order " in str(err.value)
    everything = Settings(exclude_features=[s.name for s in specs])
    with pytest.raises(TrainingDataError, match="leaves no feature"):
        without_excluded(specs, everything)


def test_small_history_settings_are_typed_and_checked():
    s = Settings(examples_at="creation", recency_half_life_days=365, min_boost_rounds=50)
    assert (s.examples_at, s.recency_half_life_days, s.min_boost_rounds) == ("creation", 365.0, 50)
    assert Settings().refit_on_all_training is True and Settings().validation_min_orders == 0
    with pytest.raises(ValueError):
        Settings(examples_at="weekly")
    with pytest.raises(ValueError):
        Settings(recency_half_life_days=0)


def test_floor_and_refit_on_the_scms_history(scms_dataset):
    from features.registry import feature_specs
    from features.training_set import build_training_set
    from training.fit import fit_risk_model

    extra = ["fulfill_via", "shipment_mode", "vendor"]
    frame = build_training_set(
        scms_dataset, "2013-12-31", examples_at="creation", extra_order_columns=extra
    )
    specs = feature_specs(scms_dataset, extra)
    names = [s.name for s in specs]
    cats = [s.name for s in specs if s.kind == "categorical"]

    def fit(**kw):
        return fit_risk_model(
            frame, feature_names=names, categorical=cats, stage_map={}, seed=1, **kw
        )

    floored = fit(min_rounds=60, recency_half_life_days=365.0, refit=False)
    assert 60 <= floored.meta["num_trees"] <= 300
    assert floored.meta["min_rounds"] == 60
    refitted = fit(min_rounds=60, recency_half_life_days=365.0, refit=True)
    assert refitted.meta["num_trees"] == floored.meta["num_trees"]
    risk = refitted.predict_risk(frame)
    assert risk.min() >= 0 and risk.max() <= 1
    # The refitted trees saw the held-out end too: they differ from the floored ones there.
    assert not np.allclose(risk, floored.predict_risk(frame))
