"""Reason sentences for signed values read as words (past due), in both languages."""

import numpy as np
import pandas as pd

from serving.explain import _fill


def test_negative_values_use_the_negative_sentence_with_the_magnitude():
    features = pd.DataFrame({"slack_days": [4.0, -2.5], "ctx_plant_id": ["PL1", "PL2"]})
    out = _fill(
        "the due date is {value:.1f} days away",
        (),
        features,
        "slack_days",
        np.array([0, 1]),
        negative="the due date passed {value:.1f} days ago",
    )
    assert out == ["the due date is 4.0 days away", "the due date passed 2.5 days ago"]


def test_without_a_negative_sentence_the_value_is_said_as_it_is():
    features = pd.DataFrame({"x": [-1.0]})
    assert _fill("x is {value:.1f}", (), features, "x", np.array([0])) == ["x is -1.0"]
