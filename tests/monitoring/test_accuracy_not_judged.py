"""When realised accuracy is not judged, the monitor says why (issue 15, item 14): 123 matured
orders that were all late next to a reference PR AUC used to read "no matured orders or no
reference figure"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.monitor import monitor
from monitoring.status import Thresholds, decide_status


def _scored_and_outcomes(n: int, n_late: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"O{i:04d}" for i in range(n)]
    risk = np.linspace(0.05, 0.95, n)
    late = np.r_[np.ones(n_late, dtype=int), np.zeros(n - n_late, dtype=int)]
    return (
        pd.DataFrame({"order_id": ids, "risk": risk}),
        pd.DataFrame({"order_id": ids, "late": late}),
    )


def _monitor(n: int, n_late: int, reference_pr_auc: float | None = 0.62):
    scored, outcomes = _scored_and_outcomes(n, n_late)
    return monitor(
        reference=pd.DataFrame(),  # no drift computed: only realised accuracy is looked at
        current=scored,
        outcomes=outcomes,
        features=[],
        model_version="3",
        reference_pr_auc=reference_pr_auc,
        thresholds=Thresholds(min_matured=100),
    )


def _not_judged(result) -> list[str]:
    return [r for r in result.reasons if r.startswith("realised accuracy not judged")]


@pytest.mark.parametrize(("n_late", "outcome"), [(123, "late"), (0, "on time")])
def test_all_matured_orders_of_one_outcome_say_the_auc_is_undefined(n_late, outcome):
    result = _monitor(123, n_late)
    assert result.realised.n_matured == 123 and result.realised.pr_auc is None
    assert result.realised.brier is not None  # still computed
    assert _not_judged(result) == [
        f"realised accuracy not judged: all 123 matured orders were {outcome}, so PR AUC and "
        "ROC AUC are undefined (they rank late orders against on-time ones); the Brier score "
        "still says how close the risks were"
    ]


def test_too_few_matured_orders_say_how_many_of_how_many():
    result = _monitor(40, 10)
    assert _not_judged(result) == [
        "realised accuracy not judged: 40 matured orders of the 100 needed "
        "(OTD_RISK_MONITOR_MIN_MATURED); run the monitor again when more are due"
    ]


def test_no_matured_order_says_when_orders_mature():
    result = monitor(
        reference=pd.DataFrame(),
        current=_scored_and_outcomes(50, 10)[0],
        outcomes=pd.DataFrame({"order_id": [], "late": []}),
        features=[],
        model_version="3",
        reference_pr_auc=0.62,
        thresholds=Thresholds(),
    )
    assert result.realised.n_matured == 0
    assert "no scored order has matured yet" in _not_judged(result)[0]


def test_no_reference_figure_says_so():
    result = _monitor(200, 60, reference_pr_auc=None)
    assert _not_judged(result) == [
        "realised accuracy not judged: the champion has no validation PR AUC to compare with; "
        "retrain to register a version that logs one"
    ]


def test_judged_when_both_outcomes_and_enough_orders():
    result = _monitor(200, 60)
    assert result.realised.pr_auc is not None and _not_judged(result) == []


def test_the_status_rule_keeps_its_old_call():
    # Callers that do not pass n_late still get a reason that names the count.
    _, reasons = decide_status(
        drifted_share=0.0,
        drifted_features=[],
        prediction_drifted=False,
        realised_pr_auc=None,
        n_matured=123,
        reference_pr_auc=0.62,
        thresholds=Thresholds(),
    )
    assert reasons == ["realised accuracy not judged: the realised PR AUC could not be computed"]
