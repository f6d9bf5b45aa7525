"""Order history by category: how often past orders with the same value were late, as of T.

For every categorical order column (customer, product, plant, priority, the product and customer
groups, the extra columns the model uses) and for the pairs of them training chose, per query:
the late rate of past orders with the query's value, shrunk towards the overall late rate
(``RATE_PRIOR_ORDERS`` pseudo-orders of it: a value seen twice says little), the same with recent
orders weighing more (half-life ``RATE_HALF_LIFE_DAYS``: rates drift), their mean days late, and
how many settled orders stand behind the rate.

When an outcome counts: an order is *settled* at the end of its due date, late or not. Late =
not delivered by then; on time = delivered by then. Counting an on-time delivery the moment it
happens, before its late siblings are known, would tilt recent rates towards on time (the same
selection on the outcome the training labels avoid). An order cancelled before it is settled
never counts. Days late are known at delivery (an early delivery counts 0 at settlement).
Grace days do not apply here: the rates are about the due date as promised.

All of it is cumulative sums over event times read at each query's own as_of
(``features.timeline.Timeline``), so the full history and the history cut at T give the same
numbers bit for bit (the point-in-time property test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.dataset import Dataset
from features.queries import Queries
from features.registry import PAIR_SEPARATOR, RATE_HALF_LIFE_DAYS
from features.timeline import (
    DAY_NS,
    NOT_YET,
    EventTimes,
    Timeline,
    combine_codes,
    day_number,
    decay_weights,
    local_day_number,
    local_midnight_ns,
    to_ns,
)

RATE_PRIOR_ORDERS = 20.0
"""Shrinkage: a value's rate counts this many pseudo-orders at the overall rate (empirical Bayes
with a fixed prior strength; the settled-orders count beside it lets the model judge the rest)."""
_VALUE_JOIN = "\x1f"

SETTLED_CAP = 100.0
"""``settled_<key>`` counts at most this many orders..."""
SETTLED_WINDOW_DAYS = 365
"""...settled in this many days before as_of."""
RATE_PREFIXES: tuple[str, ...] = ("late_rate_", "late_rate_recent_", "mean_days_late_", "settled_")
"""The features one key gives, by name prefix (``<prefix><key name>``)."""


def key_name(columns: Sequence[str]) -> str:
    """The name of a key (one column or a pair) in feature names."""
    return PAIR_SEPARATOR.join(columns)


def key_values(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Each row's value of the key as text (a pair joined by an invisible separator); NaN when a
    column is empty, so an unknown value never borrows another's history."""
    missing = np.zeros(len(rows), dtype=bool)
    joined: pd.Series | None = None
    for col in columns:
        values = rows[col].reset_index(drop=True)
        text = values.astype(str)
        missing |= values.isna().to_numpy() | (text.str.strip() == "").to_numpy()
        joined = text if joined is None else joined + _VALUE_JOIN + text
    assert joined is not None, "a key names at least one column"
    out = joined.to_numpy(dtype=object)
    out[missing] = np.nan
    return out


def key_codes(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``key_values`` as dense int64 codes (-1 where a column is empty): the same groups, for
    ``Timeline`` lookups without a string per row. Emptiness is judged on the distinct values
    only (stripping every row's text was a second per-row pass)."""
    out: np.ndarray | None = None
    for col in columns:
        raw, uniques = pd.factorize(rows[col].to_numpy(dtype=object), use_na_sentinel=True)
        text = pd.Index(uniques).astype(str)
        merged = pd.factorize(text)[0]
        empty = np.asarray(text.str.strip() == "")
        code = np.where(raw < 0, -1, np.where(empty[raw], -1, merged[raw])).astype(np.int64)
        out = code if out is None else combine_codes(out, code)
    assert out is not None, "a key names at least one column"
    return out


def _outcome_events(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per order: when it is settled (NOT_YET when it never counts), late (0/1), days late and
    when those are known."""
    orders = dataset.orders
    created = to_ns(orders["created_at"])
    settle = np.maximum(local_midnight_ns(orders["due_date"], dataset.tz, plus_days=1), created)
    n = len(orders)
    delivered = (
        to_ns(orders["delivered_at"]) if "delivered_at" in orders.columns else np.full(n, NOT_YET)
    )
    cancelled = (
        to_ns(orders["cancelled_at"]) if "cancelled_at" in orders.columns else np.full(n, NOT_YET)
    )
    on_time = delivered < settle
    # Cancelled before its due date was over (and not delivered before): it never counts.
    dropped = (cancelled < settle) & ~on_time
    settle_at = np.where(dropped, NOT_YET, settle)
    late = (~on_time).astype(np.float64)
    got = delivered != NOT_YET
    due_day = day_number(orders["due_date"])
    delivered_day = np.where(got, local_day_number(np.where(got, delivered, 0), dataset.tz), 0)
    days = np.where(got, np.maximum(0, delivered_day - due_day), 0).astype(np.float64)
    days_known = np.where(got & ~dropped, np.maximum(delivered, settle), NOT_YET)
    return settle_at, late, days, days_known


def category_history_features(
    dataset: Dataset, q: Queries, keys: Sequence[Sequence[str]]
) -> dict[str, np.ndarray]:
    """For each key (a column or a pair of ``orders`` columns): ``late_rate_<key>``,
    ``late_rate_recent_<key>``, ``mean_days_late_<key>`` and ``settled_<key>`` per query."""
    if not keys:
        return {}
    orders = dataset.orders
    settle, late, days, days_known = _outcome_events(dataset)
    counted = settle != NOT_YET
    weight = np.where(
        counted, decay_weights(np.where(counted, settle, 0), RATE_HALF_LIFE_DAYS), 0.0
    )
    q_decay = decay_weights(q.t, RATE_HALF_LIFE_DAYS)
    # Every key's events are the same settlements: their times sorted once.
    settle_times, known_times = EventTimes(settle), EventTimes(days_known)

    # The overall rates the per-value rates shrink towards, as of each query.
    everyone = np.zeros(len(orders), dtype=np.int64)
    q_everyone = np.zeros(len(q), dtype=np.int64)
    overall = _sums(
        everyone, settle_times, late, weight, days, known_times, q_everyone, q.t, q_decay
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        prior = np.where(overall["n"] > 0, overall["late"] / overall["n"], np.nan)
        prior_recent = np.where(overall["w"] > 0, overall["w_late"] / overall["w"], np.nan)
        prior_days = np.where(overall["nd"] > 0, overall["days"] / overall["nd"], np.nan)

    m = RATE_PRIOR_ORDERS
    out: dict[str, np.ndarray] = {}
    for columns in keys:
        name = key_name(columns)
        values = key_codes(orders, columns)
        q_values = values[q.pos]  # the queries' rows are orders' rows
        s = _sums(values, settle_times, late, weight, days, known_times, q_values, q.t, q_decay)
        unknown = q_values < 0
        out[f"late_rate_{name}"] = np.where(unknown, np.nan, (s["late"] + m * prior) / (s["n"] + m))
        out[f"late_rate_recent_{name}"] = np.where(
            unknown, np.nan, (s["w_late"] + m * prior_recent) / (s["w"] + m)
        )
        out[f"mean_days_late_{name}"] = np.where(
            unknown, np.nan, (s["days"] + m * prior_days) / (s["nd"] + m)
        )
        # Over the last year and capped: beyond a hundred orders a rate is as trustworthy as it
        # gets, and a count of all history only grows with time (a model would read it as the
        # calendar, and monitoring would see it drift).
        out[f"settled_{name}"] = np.where(unknown, np.nan, np.minimum(s["n_window"], SETTLED_CAP))
    return out


def _sums(
    keys: np.ndarray,
    settle: EventTimes,
    late: np.ndarray,
    weight: np.ndarray,
    days: np.ndarray,
    days_known: EventTimes,
    q_keys: np.ndarray,
    q_t: np.ndarray,
    q_decay: np.ndarray,
) -> dict[str, np.ndarray]:
    outcomes = Timeline(keys, settle).sums_at(
        {"n": np.ones(len(keys)), "late": late, "w": weight, "w_late": weight * late},
        q_keys,
        q_t,
        windows_ns=(SETTLED_WINDOW_DAYS * DAY_NS,),
    )
    lateness = Timeline(keys, days_known).sums_at(
        {"nd": np.ones(len(keys)), "days": days}, q_keys, q_t
    )
    return {
        "n": outcomes["n"],
        "n_window": outcomes[f"n@{SETTLED_WINDOW_DAYS * DAY_NS}"],
        "late": outcomes["late"],
        "w": outcomes["w"] / q_decay,
        "w_late": outcomes["w_late"] / q_decay,
        "nd": lateness["nd"],
        "days": lateness["days"],
    }
