"""Integer keys for Timeline lookups: the codes group rows exactly as the texts they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.history_features import key_codes, key_values
from features.timeline import NOT_YET, EventTimes, Timeline, combine_codes, text_codes


def _same_partition(codes: np.ndarray, labels: np.ndarray) -> bool:
    """Two arrays group rows the same way: equal codes <=> equal labels (missing matched)."""
    frame = pd.DataFrame({"c": codes, "l": pd.Series(labels, dtype=object).fillna("\0")})
    return bool(
        (frame.groupby("c")["l"].nunique() == 1).all()
        and (frame.groupby("l")["c"].nunique() == 1).all()
    )


def _mixed_rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.array(["a", "b", " ", "", None, np.nan, 1, "1", 2.0, "x y"], dtype=object)
    return pd.DataFrame(
        {
            "first": values[rng.integers(0, len(values), n)],
            "second": values[rng.integers(0, len(values), n)],
        }
    )


@pytest.mark.parametrize("columns", [["first"], ["first", "second"]])
def test_key_codes_group_rows_as_key_values_do(columns):
    rows = _mixed_rows()
    codes, texts = key_codes(rows, columns), key_values(rows, columns)
    assert ((codes < 0) == pd.isna(texts)).all()  # empty or blank in any column: no key
    assert _same_partition(codes[codes >= 0], texts[codes >= 0])
    # 1 and "1" are one value (as text), blanks are no value.
    one = rows.index[rows["first"].astype(str) == "1"]
    assert len(set(key_codes(rows, ["first"])[one])) == 1


def test_text_codes_group_like_joined_text():
    rows = _mixed_rows(seed=1)
    # Any missing value (None, NaN) is the one text "nan".
    text = rows.map(lambda v: "nan" if pd.isna(v) else str(v))
    joined = text["first"] + "\x1f" + text["second"]
    codes = text_codes(rows["first"].to_numpy(), rows["second"].to_numpy())
    assert (codes >= 0).all() and _same_partition(codes, joined.to_numpy())


def test_combine_codes_keeps_missing_and_is_dense():
    out = combine_codes(np.array([0, 1, -1, 0, 1]), np.array([2, 2, 0, -1, 2]))
    assert out.tolist() == [0, 1, -1, -1, 1]


def test_event_times_rank_each_event_among_the_distinct_times():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 50, 1000).astype(np.int64) * 1_000_000_000
    events = EventTimes(x)
    assert np.array_equal(events.unique, np.unique(x))
    assert np.array_equal(events.rank, np.searchsorted(np.unique(x), x) + 1)
    assert np.array_equal(x[events.order], np.sort(x))
    assert len(EventTimes(np.array([], dtype=np.int64)).unique) == 0


def test_timeline_on_codes_answers_as_on_text_keys():
    rng = np.random.default_rng(3)
    labels = np.array(["p1", "p2", "p3"], dtype=object)[rng.integers(0, 3, 300)]
    times = rng.integers(0, 1000, 300).astype(np.int64)
    times[::17] = NOT_YET
    values = {"v": rng.normal(size=300)}
    q_labels = np.array(["p1", "p2", "p3", "p4"], dtype=object)[rng.integers(0, 4, 200)]
    q_t = rng.integers(0, 1100, 200).astype(np.int64)
    codes = text_codes(np.concatenate([labels, q_labels]))
    by_text = Timeline(labels, times).sums_at(values, q_labels, q_t, windows_ns=(100,))
    by_code = Timeline(codes[:300], times).sums_at(values, codes[300:], q_t, windows_ns=(100,))
    shared = Timeline(codes[:300], EventTimes(times)).sums_at(
        values, codes[300:], q_t, windows_ns=(100,)
    )
    for name in by_text:
        np.testing.assert_array_equal(by_text[name], by_code[name])
        np.testing.assert_array_equal(by_text[name], shared[name])
    with pytest.raises(TypeError, match="queried by codes"):
        Timeline(codes[:300], times).sums_at(values, q_labels, q_t)
