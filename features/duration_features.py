"""Typical durations: how long a stage (or a whole order) usually takes, and where this order
stands against that, as of T.

A planner's first estimate of when an open order will arrive is "now plus the usual time of
what is left". These features give the model that estimate and its parts, learned from the
dataset's own history point in time:

- a stage's *typical duration* at a plant for a product group: the recency-weighted mean of the
  log durations of that stage's completions known at T (a geometric mean, close to the median
  for the skewed durations of real stages), shrunk towards the plant's typical duration of the
  stage, itself shrunk towards the stage's over all plants;
- a stage's duration runs from its ``started_at`` (else the latest completion of an earlier
  stage of the order, else the order's creation) to its ``completed_at``;
- ``<stage>_days_over_typical``: for the stage an order is in, the days it has run so far minus
  its typical duration (positive = longer than usual already); empty for the other stages;
- ``typical_remaining_days``: what is left of the current stage by its typical duration, plus the
  typical durations of the order's stages still to come; ``typical_days_past_due``: that minus
  the days left to the due date (positive = the usual pace misses the due date);
- without stages, the same idea for the whole order: ``typical_lead_days`` (creation to delivery
  of delivered orders of the plant and customer group) and ``lead_days_past_due``.
"""

from __future__ import annotations

import numpy as np

from data.contract import STAGES
from data.dataset import Dataset
from features.queries import Queries, group_column
from features.registry import CUSTOMER_GROUP_COLUMNS, PRODUCT_GROUP_COLUMNS
from features.stage_features import StageGrid
from features.timeline import (
    DAY_NS,
    NOT_YET,
    EventTimes,
    Timeline,
    combine_codes,
    decay_weights,
    text_codes,
    to_ns,
)

DURATION_HALF_LIFE_DAYS = 90.0
"""A completion's weight in a typical duration halves every this many days before as_of."""
DURATION_PRIOR_WEIGHT = 5.0
"""A finer typical duration counts this many pseudo-completions at the coarser one."""


def _typical(
    levels: list[tuple[np.ndarray, np.ndarray]],
    log_days: np.ndarray,
    known: np.ndarray,
    q_t: np.ndarray,
) -> np.ndarray:
    """Shrunk recency-weighted mean of ``log_days`` per query, from the coarsest key level to
    the finest (each ``(event keys, query keys)``); NaN without any history."""
    weight = np.where(
        known != NOT_YET,
        decay_weights(np.where(known != NOT_YET, known, 0), DURATION_HALF_LIFE_DAYS),
        0.0,
    )
    q_decay = decay_weights(q_t, DURATION_HALF_LIFE_DAYS)
    estimate = np.full(len(q_t), np.nan)
    events = EventTimes(known)  # every level's events are the same completions
    for i, (keys, q_keys) in enumerate(levels):
        s = Timeline(keys, events).sums_at({"w": weight, "wx": weight * log_days}, q_keys, q_t)
        w, wx = s["w"] / q_decay, s["wx"] / q_decay
        if i == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                estimate = np.where(w > 0, wx / w, np.nan)
        else:
            m = DURATION_PRIOR_WEIGHT
            estimate = np.where(np.isnan(estimate), estimate, (wx + m * estimate) / (w + m))
    return np.expm1(estimate)


def _codes(values: np.ndarray) -> np.ndarray:
    # Grouping by text as before (a missing plant is the group "nan"), as integer codes.
    return text_codes(values)


def stage_duration_features(
    dataset: Dataset, q: Queries, grid: StageGrid, slack_days: np.ndarray
) -> dict[str, np.ndarray]:
    """``<stage>_days_over_typical``, ``typical_remaining_days`` and ``typical_days_past_due``."""
    orders = dataset.orders
    n_orders, k = grid.has.shape
    created = to_ns(orders["created_at"])
    start = stage_starts(grid, created)

    # History: every completed stage of every order, known at its completion.
    done = grid.has & (grid.completed != NOT_YET)
    r, s = np.nonzero(done)
    known = np.maximum(grid.completed[r, s], created[r])
    days = np.maximum(0, grid.completed[r, s] - start[r, s]) / DAY_NS
    # Keys as codes of (stage), (stage, plant), (stage, plant, group); the queries' orders are
    # rows of ``orders``, so their codes are read at ``q.pos``.
    nq = len(q)
    plant = _codes(orders["plant_id"].to_numpy(dtype=object))
    group = _codes(orders[group_column(orders, PRODUCT_GROUP_COLUMNS, "product_id")].to_numpy())
    stage_plant = combine_codes(np.repeat(np.arange(k), len(orders)), np.tile(plant, k))
    stage_plant_group = combine_codes(stage_plant, np.tile(group, k))
    q_rows = np.tile(q.pos, k) + np.repeat(np.arange(k), nq) * len(orders)
    ev_rows = r + s * len(orders)
    ev_levels = [s.astype(np.int64), stage_plant[ev_rows], stage_plant_group[ev_rows]]
    q_levels = [
        np.repeat(np.arange(k, dtype=np.int64), nq),
        stage_plant[q_rows],
        stage_plant_group[q_rows],
    ]
    typical = (
        _typical(
            list(zip(ev_levels, q_levels, strict=True)), np.log1p(days), known, np.tile(q.t, k)
        )
        .reshape(k, nq)
        .T
    )

    # Where each queried order stands at its as_of.
    t = q.t[:, None]
    has = grid.has[q.pos]
    completed = grid.completed[q.pos]
    is_done = has & (completed <= t)
    pending = has & ~is_done
    any_pending = pending.any(axis=1)
    cur = np.where(any_pending, pending.argmax(axis=1), -1)
    rows = np.arange(nq)
    cur_c = np.maximum(cur, 0)
    started_cur = grid.started[q.pos, cur_c]
    earlier = np.where(
        is_done & (np.arange(k)[None, :] < cur_c[:, None]), completed, np.iinfo(np.int64).min
    ).max(axis=1)
    since = np.where(
        started_cur <= q.t,
        started_cur,
        np.where(earlier > np.iinfo(np.int64).min, earlier, q.created),
    )
    since = np.maximum(since, q.created)
    elapsed = (q.t - since) / DAY_NS
    typical_cur = typical[rows, cur_c]
    over = elapsed - typical_cur

    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(STAGES):
        out[f"{name}_days_over_typical"] = np.where(any_pending & (cur == i), over, np.nan)
    # What is left: the rest of the current stage at its usual pace (none once it has run
    # longer than usual), then the usual time of each stage still to come.
    later = np.where(pending & (np.arange(k)[None, :] > cur_c[:, None]), typical, np.nan)
    current_part = np.maximum(typical_cur - elapsed, 0.0)
    remaining = np.nan_to_num(current_part) + np.nansum(later, axis=1)
    no_history = np.isnan(current_part) & ~np.isfinite(later).any(axis=1)
    remaining = np.where(any_pending, np.where(no_history, np.nan, remaining), 0.0)
    remaining[~has.any(axis=1)] = np.nan
    out["typical_remaining_days"] = remaining
    out["typical_days_past_due"] = remaining - slack_days
    return out


def stage_starts(grid: StageGrid, created: np.ndarray) -> np.ndarray:
    """Each stage's start: its ``started_at`` when known and not after its completion, else the
    latest completion of an earlier stage of the order that is not after it, else creation.

    Only times at or before the stage's own completion are used, so a completed stage's
    duration is the same in any history that knows its completion."""
    n, k = grid.has.shape
    start = np.empty((n, k), dtype=np.int64)
    ends = np.where(grid.has, grid.completed, NOT_YET)
    for s in range(k):
        own_end = grid.completed[:, s]
        prior = np.where(ends[:, :s] <= own_end[:, None], ends[:, :s], np.iinfo(np.int64).min)
        prior_end = prior.max(axis=1) if s else np.full(n, np.iinfo(np.int64).min)
        fallback = np.where(prior_end > np.iinfo(np.int64).min, prior_end, created)
        st = grid.started[:, s]
        start[:, s] = np.where((st != NOT_YET) & (st <= own_end), st, fallback)
    return np.maximum(start, created[:, None])


def lead_time_features(
    dataset: Dataset, q: Queries, slack_days: np.ndarray
) -> dict[str, np.ndarray]:
    """``typical_lead_days`` (creation to delivery of the plant's orders for the customer
    group, known at delivery) and ``lead_days_past_due``."""
    orders = dataset.orders
    if "delivered_at" not in orders.columns:
        nan = np.full(len(q), np.nan)
        return {"typical_lead_days": nan, "lead_days_past_due": nan.copy()}
    created = to_ns(orders["created_at"])
    delivered = to_ns(orders["delivered_at"])
    known = np.where(delivered != NOT_YET, np.maximum(delivered, created), NOT_YET)
    days = np.where(delivered != NOT_YET, np.maximum(0, delivered - created) / DAY_NS, 0.0)
    plant = _codes(orders["plant_id"].to_numpy(dtype=object))
    group = _codes(orders[group_column(orders, CUSTOMER_GROUP_COLUMNS, "customer_id")].to_numpy())
    plant_group = combine_codes(plant, group)
    levels = [
        (np.zeros(len(orders), dtype=np.int64), np.zeros(len(q), dtype=np.int64)),
        (plant, plant[q.pos]),
        (plant_group, plant_group[q.pos]),
    ]
    typical = _typical(levels, np.log1p(days), known, q.t)
    age = (q.t - q.created) / DAY_NS
    return {
        "typical_lead_days": typical,
        "lead_days_past_due": np.maximum(typical - age, 0.0) - slack_days,
    }


SEASON_LAG_DAYS = 364
"""A year back, to the weekday: the same weeks of last season."""
SEASON_WINDOW_DAYS = 28
"""Last season's weeks compared: stages completed in the 28 days ending a year before this
order's planned end of the stage."""
SEASON_PRIOR_WEIGHT = 10.0
"""A group's mean counts this many pseudo-stages at the stage's mean over all groups."""
SEASON_GROUP = {"shipping": "customer", "warehouse": "customer"}
"""Shipping and warehouse delays follow the customer's region (weather, carriers); the other
stages the plant."""


def last_season_features(dataset: Dataset, q: Queries, grid: StageGrid) -> dict[str, np.ndarray]:
    """``<stage>_added_last_season``: what the stage added beyond its plan, on average, for the
    orders of the order's plant (shipping and warehouse: its customer group) whose stage
    completed in the same weeks a year before this order's planned end of it. Peaks, holidays
    and winters come back every year, and a 90-day history only learns of them when they are
    here. Point in time: only completions at or before as_of count (a window reaching past
    as_of is cut there); NaN without a year of history or without the stage."""
    from features.stage_slips import final_additions

    orders = dataset.orders
    added = final_additions(dataset, grid)["added"]  # the grid made once, by the caller
    plant = _codes(orders["plant_id"].to_numpy(dtype=object))
    customer = _codes(
        orders[group_column(orders, CUSTOMER_GROUP_COLUMNS, "customer_id")].to_numpy()
    )
    q_plant, q_customer = plant[q.pos], customer[q.pos]
    lag, window = SEASON_LAG_DAYS * DAY_NS, SEASON_WINDOW_DAYS * DAY_NS
    out: dict[str, np.ndarray] = {}
    for i, stage in enumerate(STAGES):
        rows = np.flatnonzero(np.isfinite(added[:, i]) & (grid.completed[:, i] != NOT_YET))
        times = grid.completed[rows, i]
        values = added[rows, i]
        planned = grid.planned[q.pos, i]
        has = planned != NOT_YET
        end = np.minimum(np.where(has, planned, 0) - lag, q.t)
        by_customer = SEASON_GROUP.get(stage) == "customer"
        keys = (customer if by_customer else plant)[rows]
        q_keys = q_customer if by_customer else q_plant
        sums = {"n": np.ones(len(rows)), "v": values}
        events = EventTimes(times)
        everyone = Timeline(np.zeros(len(rows), dtype=np.int64), events).sums_at(
            sums, np.zeros(len(q), dtype=np.int64), end, windows_ns=(window,)
        )
        own = Timeline(keys, events).sums_at(sums, q_keys, end, windows_ns=(window,))
        n_all, v_all = everyone[f"n@{window}"], everyone[f"v@{window}"]
        n, v = own[f"n@{window}"], own[f"v@{window}"]
        with np.errstate(divide="ignore", invalid="ignore"):
            prior = np.where(n_all > 0, v_all / n_all, np.nan)
        m = SEASON_PRIOR_WEIGHT
        value = (v + m * prior) / (n + m)
        out[f"{stage}_added_last_season"] = np.where(has, value, np.nan)
    return out
