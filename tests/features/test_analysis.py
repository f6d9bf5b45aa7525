import numpy as np
import pandas as pd

from features.analysis import late_rate_by, strongest_single_features
from features.registry import FEATURES


def test_late_rate_by_numeric_bins_and_missing():
    frame = pd.DataFrame(
        {
            "slack_days": [1, 2, 3, 4, 10, 11, 12, 13, np.nan, np.nan],
            "late": [1, 1, 1, 0, 0, 0, 0, 0, 1, 0],
        }
    )
    out = late_rate_by(frame, "slack_days", bins=2)
    assert list(out["examples"]) == [4, 4, 2]
    assert list(out["late_rate"]) == [0.75, 0.0, 0.5]
    assert out["slack_days"].iloc[-1] == "missing"


def test_late_rate_by_category():
    frame = pd.DataFrame({"priority": ["rush", "rush", "normal", None], "late": [1, 0, 0, 1]})
    out = late_rate_by(frame, "priority").set_index("priority")
    assert out.loc["rush", "late_rate"] == 0.5
    assert out.loc["missing", "examples"] == 1


def test_strongest_single_features_ranks_the_informative_one_first():
    rng = np.random.default_rng(0)
    n = 2000
    slack = rng.normal(10, 5, n)
    frame = pd.DataFrame(
        {
            "slack_days": slack,
            "order_age_days": rng.normal(5, 2, n),
            "late": (slack + rng.normal(0, 2, n) < 8).astype(int),
        }
    )
    out = strongest_single_features(frame, list(FEATURES))
    assert out["feature"].iloc[0] == "slack_days"
    assert out["direction"].iloc[0] == "lower is later"
    assert out["auc"].iloc[0] > 0.8
