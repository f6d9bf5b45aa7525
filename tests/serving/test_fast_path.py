"""The few-orders path (rows read as arrays, no frames) says exactly what the frame path says:
same risk, stage contributions to 1e-12, same top stage and sentences, in both languages, with
missing numbers, missing and unseen categories and missing context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.cause import expected_stage_slips
from serving.columns import STAGE_COLUMNS, STAGE_DAYS_COLUMNS
from serving.explain import SMALL_ROWS
from serving.rows import Rows

N_ROWS = 150
"""More than ``SMALL_ROWS``: the frame path encodes with the model's own ``encode``."""


@pytest.fixture(scope="module")
def open_features(served) -> pd.DataFrame:
    from features.build import open_order_features

    return open_order_features(served.dataset, **served.feature_options).head(N_ROWS)


@pytest.fixture(scope="module")
def slips(served) -> dict[str, float]:
    return expected_stage_slips(served.dataset, served.dataset.snapshot_time())


def _odd(features: pd.DataFrame, risk_model) -> pd.DataFrame:
    """Missing numbers, missing and unseen categories, missing context, on a share of rows."""
    odd = features.copy()
    numeric = [n for n in risk_model.feature_names if n not in risk_model.categorical_levels]
    for j, name in enumerate(numeric):
        odd.iloc[j % 7 :: 7, odd.columns.get_loc(name)] = np.nan
    for name in risk_model.categorical_levels:
        odd.iloc[0::5, odd.columns.get_loc(name)] = None
        odd.iloc[1::5, odd.columns.get_loc(name)] = "never-seen"
        odd.iloc[2::5, odd.columns.get_loc(name)] = np.nan
    for j, name in enumerate(c for c in odd.columns if str(c).startswith("ctx_")):
        odd.iloc[j % 3 :: 3, odd.columns.get_loc(name)] = None
    return odd


def _assert_same(by_rows, frame: pd.DataFrame, lang: str) -> None:
    np.testing.assert_allclose(by_rows.risk, frame["risk"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        by_rows.stages, frame[list(STAGE_COLUMNS)].to_numpy(), rtol=0, atol=1e-12
    )
    assert by_rows.top_stage.tolist() == frame["top_stage"].tolist()
    assert by_rows.reasons[lang] == frame["reasons"].tolist()
    if by_rows.forecast is not None:
        # One order's forecast goes through LightGBM's single-row path: the same numbers.
        got = by_rows.forecast_columns()
        for column in (
            "predicted_days_late",
            "days_late_p10",
            "days_late_p90",
            *STAGE_DAYS_COLUMNS,
        ):
            np.testing.assert_array_equal(got[column], frame[column].to_numpy(), err_msg=column)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("odd", [False, True], ids=["as-built", "missing-and-unseen"])
@pytest.mark.parametrize("with_slips", [True, False], ids=["cause", "shap-only"])
def test_few_rows_say_what_the_frame_says(
    served, explainer, open_features, slips, lang, odd, with_slips
):
    rm = served.loaded.risk_model
    features = _odd(open_features, rm) if odd else open_features
    expected_slips = slips if with_slips else None
    assert len(features) > SMALL_ROWS
    frame = explainer.explain(features, lang=lang, expected_slips=expected_slips).frame()
    rows = Rows(features)
    # One order at a time (the API's common call) and small batches, in a shuffled order.
    order = np.random.default_rng(3).permutation(len(features))
    for start, size in [(0, 1), (1, 1), (2, 1), (3, 5), (8, SMALL_ROWS)]:
        picked = order[start : start + size]
        got = explainer.explain(
            rows.take(picked), lang=lang, num_threads=1, expected_slips=expected_slips
        )
        _assert_same(got, frame.iloc[picked], lang)
    for i in order[:40]:
        got = explainer.explain(rows.take([i]), lang=lang, expected_slips=expected_slips)
        _assert_same(got, frame.iloc[[i]], lang)


def test_other_languages_come_from_the_same_values(explainer, open_features, slips):
    rows = Rows(open_features).take([4, 0, 4])
    got = explainer.explain(rows, lang="en", expected_slips=slips, reason_langs=("zh", "en"))
    zh = explainer.explain(open_features.iloc[[4, 0, 4]], lang="zh", expected_slips=slips).frame()
    assert got.reasons["zh"] == zh["reasons"].tolist()
    assert got.reasons["en"][0] == got.reasons["en"][2]


def test_rows_read_the_frames_arrays(open_features):
    rows = Rows(open_features)
    taken = rows.take([5, 2, 5]).take([1, 2])
    assert taken.n == 2
    for name in open_features.columns:
        expected = open_features[name].to_numpy()[[2, 5]]
        assert pd.Series(taken[name]).equals(pd.Series(expected)), name
    assert taken.to_frame().equals(open_features.iloc[[2, 5]])
    assert "no-such-column" not in taken and set(taken) == set(open_features.columns)


def test_api_by_id_equals_the_frame_path(client, reader, served, slips):
    """By id from the snapshot (no frame) against the same orders sent alongside one by value,
    which sends the whole batch down the frame path."""
    rm = served.loaded.risk_model
    ids = served.scores["order_id"].tolist()[:12]
    blank = {n: None for n in rm.feature_names}
    for lang in ("en", "zh"):
        fast = [
            client.post(
                "/v1/risk", headers=reader, json={"orders": [{"order_id": i}], "lang": lang}
            ).json()["results"][0]
            for i in ids
        ]
        orders = [{"order_id": i} for i in ids] + [{"order_id": "x", "features": blank}]
        general = client.post(
            "/v1/risk", headers=reader, json={"orders": orders, "lang": lang}
        ).json()["results"][:-1]
        assert [r["order_id"] for r in general] == ids
        for a, b in zip(fast, general, strict=True):
            assert a["top_stage"] == b["top_stage"] and a["reasons"] == b["reasons"]
            assert a["risk"] == pytest.approx(b["risk"], abs=1e-12)
            for stage, value in a["stage_contributions"].items():
                assert value == pytest.approx(b["stage_contributions"][stage], abs=1e-12)
