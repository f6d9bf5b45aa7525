"""Point-in-time lookups over event streams, vectorised.

Every feature that counts or sums past events ("on-time deliveries of this customer known at
as_of") is a per-key cumulative sum read at each query's own as_of. These helpers do that for
millions of (key, as_of) queries at once with one sort and a binary search, exactly (integer
nanosecond times, no rounding), and without a per-order Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

DAY_NS = 86_400 * 1_000_000_000
NOT_YET = np.iinfo(np.int64).max
"""Time of an event that has not happened: after every as_of."""


def to_ns(values: pd.Series | pd.Index | pd.Timestamp) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds; missing values become ``NOT_YET``."""
    if isinstance(values, pd.Timestamp):
        return np.array([values.as_unit("ns").value], dtype=np.int64)
    arr = pd.DatetimeIndex(values).as_unit("ns")
    out = arr.asi8.copy()
    out[arr.isna()] = NOT_YET
    return out


def local_midnight_ns(dates: pd.Series, tz: str, plus_days: int = 0) -> np.ndarray:
    """The start of each calendar date (+ ``plus_days``) in zone ``tz``, as UTC nanoseconds.

    ``plus_days=1`` gives the end of the date: an order due on day D is late once D is over.
    """
    shifted = pd.DatetimeIndex(dates).as_unit("ns") + pd.Timedelta(days=plus_days)
    # Midnight can be skipped or repeated by a DST change; take the first valid instant.
    local = shifted.tz_localize(
        tz, ambiguous=np.zeros(len(shifted), dtype=bool), nonexistent="shift_forward"
    )
    out = local.asi8.copy()
    out[local.isna()] = NOT_YET
    return out


def day_number(dates: pd.Series) -> np.ndarray:
    """Calendar dates (naive) as days since 1970-01-01."""
    return pd.DatetimeIndex(dates).as_unit("ns").asi8 // DAY_NS


def local_day_number(ns: np.ndarray, tz: str) -> np.ndarray:
    """Calendar day (days since 1970-01-01) of UTC nanosecond instants, seen in zone ``tz``."""
    idx = pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
    return (idx.tz_localize(None).normalize().asi8 // DAY_NS).astype(np.int64)


def text_codes(*columns: np.ndarray) -> np.ndarray:
    """One dense int64 code per row for the tuple of its values read as text (``str(v)``: 1 and
    "1" are the same value; a missing value, None or NaN, is the text "nan"), for ``Timeline``
    keys: the same groups as joining the texts with a separator, without a string per row."""
    out: np.ndarray | None = None
    for values in columns:
        raw, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
        # Values that read the same as text share a code (factorize compares values, not text).
        merged = pd.factorize(pd.Index(uniques).astype(str))[0]
        code = merged[raw].astype(np.int64)
        out = code if out is None else combine_codes(out, code)
    assert out is not None, "text_codes needs at least one column"
    return out


def combine_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense codes of the pairs (a, b) of two dense code arrays; -1 (no key) in either stays -1."""
    known = (a >= 0) & (b >= 0)
    out = np.full(len(a), -1, dtype=np.int64)
    out[known] = pd.factorize(a[known] * (int(b.max(initial=0)) + 1) + b[known])[0]
    return out


class EventTimes:
    """The times of one stream of events, sorted once: every ``Timeline`` over the same events
    (one per key level: all orders, a plant, a plant and product group) shares the sort."""

    def __init__(self, times: np.ndarray) -> None:
        self.times = np.asarray(times, dtype=np.int64)
        self.order = np.argsort(self.times, kind="stable")
        """Event positions by time (ties in their given order)."""
        ordered = self.times[self.order]
        new = np.ones(len(ordered), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        self.unique = ordered[new]
        """The distinct times, ascending."""
        self.rank = np.empty(len(ordered), dtype=np.int64)
        """Each event's 1-based rank among the distinct times: event <= t <=> rank <= the
        number of distinct times <= t."""
        self.rank[self.order] = np.cumsum(new)


class Timeline:
    """Events grouped by key and ordered by time; answers "as of t" questions per query.

    Sorting happens once here (the times once per ``EventTimes``); each lookup is two binary
    searches per query.
    """

    def __init__(self, keys: np.ndarray, times: np.ndarray | EventTimes) -> None:
        keys = np.asarray(keys)
        events = times if isinstance(times, EventTimes) else EventTimes(times)
        # Integer keys are codes already (``text_codes``: dense, -1 = no key): hashing strings
        # per lookup cost more than the lookups themselves on 100,000 orders.
        self._cats: pd.Index | None = None
        if np.issubdtype(keys.dtype, np.integer):
            keep = (events.times != NOT_YET) & (keys >= 0)
            code = np.where(keep, keys, -1).astype(np.int64)
            if len(code) and code.max() >= 2**31:
                raise ValueError("Timeline: integer keys must be dense codes below 2**31")
        else:
            keep = (events.times != NOT_YET) & pd.notna(keys)
            self._cats = pd.Index(pd.unique(keys[keep]))
            code = np.full(len(keys), -1, dtype=np.int64)
            code[keep] = self._cats.get_indexer(keys[keep])
        # Kept events by (key, time), ties in their given order: the time order, then a stable
        # sort by key (a radix sort when the codes fit 16 bits).
        by_time = events.order[keep[events.order]]
        narrow = np.int16 if len(code) == 0 or code.max() < 2**15 else np.int64
        self._order = by_time[np.argsort(code[by_time].astype(narrow), kind="stable")]
        """Positions (in the events given) of the kept events, by key then time."""
        self._codes_sorted = code[self._order]
        self._sorted = (self._codes_sorted << 32) | events.rank[self._order]
        self._unique_times = events.unique

    def _locate(self, q_code: np.ndarray, q_times: np.ndarray) -> np.ndarray:
        """For each query, the index (in sorted events) of the last event with its key at or
        before its time; -1 when there is none."""
        q_rank = np.searchsorted(self._unique_times, q_times, side="right")
        last = np.searchsorted(self._sorted, (q_code << 32) | q_rank, side="right") - 1
        found = (q_code >= 0) & (last >= 0)
        found[found] = self._codes_sorted[last[found]] == q_code[found]
        return np.where(found, last, -1)

    def _codes(self, q_keys: np.ndarray) -> np.ndarray:
        q_keys = np.asarray(q_keys)
        if self._cats is None:
            if not np.issubdtype(q_keys.dtype, np.integer):
                raise TypeError("Timeline: events keyed by codes are queried by codes")
            return q_keys.astype(np.int64)
        return self._cats.get_indexer(q_keys).astype(np.int64)

    def sums_at(
        self,
        values: Mapping[str, np.ndarray],
        q_keys: np.ndarray,
        q_times: np.ndarray,
        windows_ns: tuple[int, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Per query, the sum of each value over events with its key and time <= its time.

        With ``windows_ns``, also ``"{name}@{w}"``: the sum over (time - w, time]. Sums restart
        at each key, so they are the same whatever other keys' events the data holds.
        """
        q_times = np.asarray(q_times, dtype=np.int64)
        q_code = self._codes(q_keys)
        located = [self._locate(q_code, q_times)]
        located += [self._locate(q_code, q_times - w) for w in windows_ns]
        out: dict[str, np.ndarray] = {}
        for name, raw in values.items():
            v = np.asarray(raw, dtype=np.float64)[self._order]
            cum = pd.Series(v).groupby(self._codes_sorted, sort=False).cumsum().to_numpy()
            cum = np.concatenate([cum, [0.0]])  # index -1 reads 0: nothing yet
            at = [cum[last] for last in located]
            out[name] = at[0]
            for i, w in enumerate(windows_ns, start=1):
                out[f"{name}@{w}"] = at[0] - at[i]
        return out

    def last_index_at(self, q_keys: np.ndarray, q_times: np.ndarray) -> np.ndarray:
        """Per query, the position (in the events given to the constructor) of the latest event
        with its key at or before its time; -1 when there is none."""
        last = self._locate(self._codes(q_keys), np.asarray(q_times, dtype=np.int64))
        return np.concatenate([self._order, [-1]])[last]


DECAY_EPOCH_NS = pd.Timestamp("2000-01-01", tz="UTC").value
_MAX_DOUBLINGS = 1000.0


def decay_weights(ns: np.ndarray, half_life_days: float) -> np.ndarray:
    """``2 ** ((t - 2000-01-01) / half_life)`` per time: the ratio of two weights is the decay
    between their times, so a recency-weighted sum "as of t" is a plain cumulative sum of event
    weights divided by ``decay_weights(t)`` (no per-query loop, the same in a cut history)."""
    exponent = (np.asarray(ns, dtype=np.float64) - DECAY_EPOCH_NS) / (half_life_days * DAY_NS)
    return np.exp2(np.clip(exponent, -_MAX_DOUBLINGS, _MAX_DOUBLINGS))


def first_true(mask: np.ndarray) -> np.ndarray:
    """Column of the first True per row, -1 when a row has none."""
    idx = mask.argmax(axis=1)
    return np.where(mask.any(axis=1), idx, -1)
