"""Where an order's lateness comes from, stage by stage: what each stage added beyond its plan.

A stage's *end slip* is its completion minus its planned end. What a stage *adds* is its end slip
minus the end slip of the order's previous stage (the first stage: minus 0, the plan starts at
creation) — equivalently its actual duration minus its planned duration. The additions telescope:
the last stage's end slip is the sum of what every stage added, so "days late" splits exactly into
the stages (plus the plan's own margin against the due date and the wait from the last stage to
delivery). ``serving.cause``'s own slip (against the worst earlier slip) does not add up this way;
this is also how the simulator's ground truth measures a stage's delay.

As of T the feature frame already says it: ``<stage>_days_behind`` is a completed stage's end slip
(and a pending stage's days past its planned end so far), the stages before ``current_stage``
are the completed ones (the current stage is the first one not completed). So everything here
reads feature columns (a frame or ``serving.rows.Rows``), point in time by construction, and
:func:`final_additions` gives the training targets from the history known at the cut-off.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from data.contract import STAGES
from data.dataset import Dataset
from features.stage_features import StageGrid, stage_grid
from features.timeline import DAY_NS, NOT_YET, local_midnight_ns, to_ns

BEHIND_COLUMNS: tuple[str, ...] = tuple(f"{s}_days_behind" for s in STAGES)
NEEDED_COLUMNS: tuple[str, ...] = (*BEHIND_COLUMNS, "current_stage", "plan_margin_days")
_POSITION = {s: i for i, s in enumerate(STAGES)}


def stage_positions(current_stage: ArrayLike) -> np.ndarray:
    """Index of the current stage per row (``len(STAGES)`` for 'done'; -1 when unknown)."""
    values = np.asarray(current_stage, dtype=object)
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, str):
            out[i] = _POSITION.get(v, len(STAGES) if v == "done" else -1)
    return out


def observed_state(columns: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Per row, as of its as_of:

    - ``present`` (rows x stages): the order has the stage, with a planned end;
    - ``done``: present and before the current stage (completed);
    - ``added``: what each completed stage added (NaN for the others);
    - ``slip_so_far``: end slip of the last completed stage (0 when none);
    - ``plan_offset``: the last planned end minus the end of the due date, in days (the plan's
      own lateness; NaN when the plan does not say);
    - ``known``: the row can be split into stages (stage data, a current stage, a plan)."""
    if any(c not in columns for c in NEEDED_COLUMNS):  # no stage data: nothing to split
        n = len(np.asarray(columns["slack_days"]))
        none = np.zeros((n, len(STAGES)), dtype=bool)
        return {
            "present": none,
            "done": none,
            "pending": none,
            "added": np.full((n, len(STAGES)), np.nan),
            "slip_so_far": np.zeros(n),
            "plan_offset": np.full(n, np.nan),
            "position": np.full(n, -1, dtype=np.int64),
            "known": np.zeros(n, dtype=bool),
        }
    behind = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in BEHIND_COLUMNS])
    position = stage_positions(columns["current_stage"])
    present = ~np.isnan(behind)
    index = np.arange(len(STAGES))[None, :]
    done = present & (index < position[:, None])
    end_slip = np.where(done, behind, np.nan)
    added = np.full(behind.shape, np.nan)
    previous = np.zeros(len(behind))
    for i in range(len(STAGES)):
        d = done[:, i]
        added[d, i] = end_slip[d, i] - previous[d]
        previous = np.where(d, end_slip[:, i], previous)
    margin = np.asarray(columns["plan_margin_days"], dtype=np.float64)
    # The plan's last end against the due date. plan_margin_days counts the planned time left
    # from as_of (never below 0), so when the last stage is already past its planned end that
    # overrun, its days_behind so far, is what the margin does not show.
    last = np.where(present.any(axis=1), len(STAGES) - 1 - present[:, ::-1].argmax(axis=1), 0)
    rows = np.arange(len(behind))
    last_pending = present[rows, last] & ~done[rows, last]
    overrun = np.where(last_pending, np.nan_to_num(behind[rows, last]), 0.0)
    # All stages completed but not delivered: the plan's end is not in the features any more;
    # such rows are forecast directly.
    known = (position >= 0) & (position < len(STAGES)) & present.any(axis=1) & ~np.isnan(margin)
    return {
        "present": present,
        "done": done,
        "pending": present & ~done,
        "added": added,
        "slip_so_far": previous,
        "plan_offset": -margin - overrun,
        "position": position,
        "known": known,
    }


def final_additions(dataset: Dataset, grid: StageGrid | None = None) -> dict[str, np.ndarray]:
    """Per order (row of ``dataset.orders``) from everything ``dataset`` knows: what each stage
    added (orders x stages, NaN where the stage is absent, not completed, lacks a plan, or
    follows one that does), and ``tail``: days from the last stage's completion to delivery
    (NaN when either is missing). ``grid``: ``stage_grid(dataset)`` when the caller has it."""
    orders = dataset.orders
    n = len(orders)
    added = np.full((n, len(STAGES)), np.nan)
    tail = np.full(n, np.nan)
    if not dataset.has("order_stages"):
        return {"added": added, "tail": tail}
    grid = grid if grid is not None else stage_grid(dataset)
    ok = grid.has & (grid.planned != NOT_YET) & (grid.completed != NOT_YET)
    end_slip = np.where(ok, (grid.completed - grid.planned) / DAY_NS, np.nan)
    previous = np.zeros(n)
    broken = np.zeros(n, dtype=bool)
    for i in range(len(STAGES)):
        has = grid.has[:, i]
        # A stage without its plan or completion breaks the chain for every later stage.
        broken |= has & ~ok[:, i]
        good = has & ok[:, i] & ~broken
        added[good, i] = end_slip[good, i] - previous[good]
        previous = np.where(good, end_slip[:, i], previous)
    last = np.where(
        grid.has.any(axis=1), grid.has.shape[1] - 1 - grid.has[:, ::-1].argmax(axis=1), -1
    )
    rows = np.arange(n)
    last_done = np.where(last >= 0, grid.completed[rows, np.maximum(last, 0)], NOT_YET)
    if "delivered_at" in orders.columns:
        delivered = to_ns(orders["delivered_at"])
        got = (delivered != NOT_YET) & (last_done != NOT_YET) & ~broken
        tail[got] = (delivered[got] - last_done[got]) / DAY_NS
    return {"added": added, "tail": tail}


def days_late_continuous(dataset: Dataset) -> np.ndarray:
    """Per order: delivery minus the end of its due date, in days (> 0 = late, by the contract:
    delivered after its due date); NaN when not delivered."""
    orders = dataset.orders
    if "delivered_at" not in orders.columns:
        return np.full(len(orders), np.nan)
    delivered = to_ns(orders["delivered_at"])
    due_end = local_midnight_ns(orders["due_date"], dataset.tz, plus_days=1)
    return np.where(delivered != NOT_YET, (delivered - due_end) / DAY_NS, np.nan)
