"""An export whose stages carry no ``planned_end`` (Olist's orders, many ERPs): there is no
forecast by stage, and the top stage must still say where the order is stuck, not the catch-all
``order``; a past-due order's reasons must not say twice that its due date passed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from data.contract import EXPLANATION_STAGES, STAGES
from features.build import open_order_features
from otd_risk.settings import Settings
from serving.explain import Explainer
from training.registry import load_version
from training.train import train_model


@pytest.fixture(scope="module")
def unplanned(small_world, tmp_path_factory):
    dataset = small_world.dataset()
    stages = dataset.order_stages.assign(planned_end=pd.NaT)
    dataset = replace(dataset, order_stages=stages)
    home = tmp_path_factory.mktemp("unplanned")
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    result = train_model(dataset, settings=settings, force=True)
    model = load_version(settings, result.version)
    # The orders open at the snapshot and at three earlier weeks: enough past-due and
    # overrunning ones in a small world.
    snapshot = dataset.as_of(None)
    features = pd.concat(
        [
            open_order_features(
                dataset, snapshot - pd.Timedelta(days=d), rate_pairs=model.meta["rate_pairs"]
            )
            for d in (0, 21, 42, 63)
        ]
    ).reset_index(drop=True)
    return model, features, Explainer(model).explain(features).frame()


def test_the_top_stage_is_the_stage_running_longer_than_usual(unplanned):
    model, features, frame = unplanned
    over = pd.DataFrame({s: features[f"{s}_days_over_typical"] for s in STAGES})
    stuck = over.max(axis=1) >= 0.5
    assert stuck.sum() >= 20, "the world must have open orders running over in some stage"
    # No plan, so no stage adds days beyond one: the forecast names no stage.
    assert frame.loc[stuck, [f"stage_days_{s}" for s in STAGES]].isna().all().all()
    np.testing.assert_array_equal(
        frame.loc[stuck, "top_stage"].to_numpy(), over[stuck].idxmax(axis=1).to_numpy()
    )
    # An order in no overrun keeps the largest SHAP stage, as before.
    calm = frame.loc[~stuck]
    assert len(calm) >= 20
    shap = calm[[f"stage_{s}" for s in EXPLANATION_STAGES]].to_numpy()
    np.testing.assert_array_equal(
        calm["top_stage"].to_numpy(), np.asarray(EXPLANATION_STAGES)[shap.argmax(axis=1)]
    )


def test_a_past_due_order_is_told_once_that_its_due_date_passed(unplanned):
    _, features, frame = unplanned
    past = features["slack_days"] < 0
    assert past.sum() >= 5
    for reasons in frame.loc[past, "reasons"]:
        assert reasons[0].startswith("the due date passed")
        assert sum("the due date passed" in r for r in reasons) == 1, reasons


def test_a_past_due_order_the_forecast_calls_delivered_now_could_arrive_any_day(unplanned):
    """ "expected in 0.0 more days" read as "arrives today" for orders stuck for months; the
    frame's path (many rows) and the one-order path say the same sentence."""
    model, features, frame = unplanned
    past = np.flatnonzero((features["slack_days"] < 0).to_numpy())
    more = frame["predicted_days_late"].to_numpy() - frame["past_due_days"].to_numpy()
    now = [i for i in past if f"{max(0.0, more[i]):.1f}" == "0.0"]
    assert now, "the world must have past-due orders the forecast calls delivered now"
    explainer = Explainer(model)
    for i in past:
        first = frame["reasons"].iloc[i][0]
        assert ("it could arrive any day (80%: within" in first) == (i in now), first
        assert ("expected in" in first) == (i not in now), first
        alone = explainer.explain(features.iloc[[i]]).frame()["reasons"].iloc[0][0]
        assert alone == first
