"""Where the delay comes from: own slips, and agreement with the simulator's true cause."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.contract import EXPLANATION_STAGES, STAGES
from serving.cause import BEHIND_FEATURES, likely_cause, own_slips
from serving.columns import STAGE_COLUMNS


@pytest.mark.parametrize(
    "end_slips,expected",
    [
        # production slips 5 days; quality and shipping only carry it.
        ([0, 0, 0, 5, 5, 5, 5], [0, 0, 0, 5, 0, 0, 0]),
        # procurement 2 days late, then production adds 3 more.
        ([0, 0, 2, 5, 5, 5, 5], [0, 0, 2, 3, 0, 0, 0]),
        # early stages do not hide a later slip; a skipped stage (NaN) adds nothing.
        ([-1, -1, np.nan, -0.5, 0, 0, 4], [-1, -1, 0, -0.5, 0, 0, 4]),
    ],
)
def test_own_slips(end_slips, expected):
    got = own_slips(np.array([end_slips], dtype=float))
    np.testing.assert_allclose(got[0], expected)


def test_a_stage_not_finished_adds_its_expected_slip():
    features = pd.DataFrame(
        [
            [0, 0, 0, 1.0, 1.0, 1.0, 1.0, "quality"],  # production added 1 day, done
            [0, 0, 0, 0.2, 0.2, 0.2, 0.2, "production"],
        ],  # production running, little slip
        columns=[*BEHIND_FEATURES, "current_stage"],
        index=["a", "b"],
    )
    expected = dict.fromkeys(STAGES, 0.0) | {"shipping": 0.5}
    cause = likely_cause(features, expected)
    assert cause.tolist() == ["production", "shipping"]


def test_top_stage_names_the_true_cause_for_most_late_orders(served, explainer):
    """Among truly late orders in the top 200 by risk, how often top_stage is the simulator's
    ground-truth cause (the stage that slipped most against its plan). top_stage is the stage
    that adds the most days if the order is late. Seen on this world: 71.6% of 109 (66.1% for
    the stage with the largest expected days), against 25.7% for the largest SHAP stage alone
    (82.7% against 24.4% on the demo's 20,000-order world: benchmarks/cause_agreement.py). The
    bound is issue 14's for this world: a change to the forecast that costs it fails here."""
    from features.build import open_order_features

    truth = served.world.ground_truth.set_index("order_id")
    top = served.scores.head(200).join(truth[["late", "cause_stage"]], on="order_id")
    late = top[top["late"].astype(bool)]
    assert len(late) >= 50
    agreement = float((late["top_stage"] == late["cause_stage"]).mean())

    features = open_order_features(served.dataset, **served.feature_options).loc[late["order_id"]]
    stages = explainer.explain(features).frame()[list(STAGE_COLUMNS)].to_numpy()
    shap_only = np.asarray(EXPLANATION_STAGES, dtype=object)[stages.argmax(axis=1)]
    shap_agreement = float((shap_only == late["cause_stage"].to_numpy()).mean())
    print(
        f"top_stage = true cause: {agreement:.1%} of {len(late)} late orders in the top 200 "
        f"(largest SHAP stage alone: {shap_agreement:.1%})"
    )
    assert agreement >= 0.70
    assert agreement > shap_agreement + 0.15
