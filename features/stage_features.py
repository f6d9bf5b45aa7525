"""Stage progress and stage delay-rate features from the order_stages table.

Each order's stages are laid out as a row of seven (one column per contract stage, in process
order), so "the current stage at as_of" is a vectorised first-True over a boolean matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.contract import STAGES
from data.dataset import Dataset
from features.queries import Queries, group_column
from features.registry import (
    CUSTOMER_GROUP_COLUMNS,
    DELAY_RATE_STAGES,
    DELAY_RATE_WINDOW_DAYS,
    DELAY_THRESHOLD_DAYS,
    PRODUCT_GROUP_COLUMNS,
)
from features.timeline import DAY_NS, NOT_YET, EventTimes, Timeline, first_true, to_ns

PRODUCTION = STAGES.index("production")


@dataclass(frozen=True)
class StageGrid:
    """Per order (row of ``dataset.orders``) and stage: has a row, planned end, start,
    completion; and per row of ``order_stages``, its order's row and its stage's column (-1
    when unknown), which other features reuse rather than look the ids up again."""

    has: np.ndarray
    planned: np.ndarray
    completed: np.ndarray
    started: np.ndarray
    row: np.ndarray
    col: np.ndarray


def stage_grid(dataset: Dataset) -> StageGrid:
    """The order_stages table as (orders x stages) matrices; missing times are ``NOT_YET``."""
    stages = dataset.table("order_stages")
    n = len(dataset.orders)
    has = np.zeros((n, len(STAGES)), dtype=bool)
    planned = np.full((n, len(STAGES)), NOT_YET, dtype=np.int64)
    completed = np.full((n, len(STAGES)), NOT_YET, dtype=np.int64)
    started = np.full((n, len(STAGES)), NOT_YET, dtype=np.int64)
    stage_row = pd.Index(dataset.orders["order_id"]).get_indexer(stages["order_id"])
    stage_col = pd.Index(STAGES).get_indexer(stages["stage"])
    ok = (stage_row >= 0) & (stage_col >= 0)
    row, col = stage_row[ok], stage_col[ok]
    has[row, col] = True
    if "planned_end" in stages.columns:
        planned[row, col] = to_ns(stages["planned_end"])[ok]
    if "completed_at" in stages.columns:
        completed[row, col] = to_ns(stages["completed_at"])[ok]
    if "started_at" in stages.columns:
        started[row, col] = to_ns(stages["started_at"])[ok]
    return StageGrid(
        has=has, planned=planned, completed=completed, started=started, row=stage_row, col=stage_col
    )


def production_start_ns(grid: StageGrid, pos: np.ndarray) -> np.ndarray:
    """Planned start of production: the planned end of the last stage before production that
    the order has with a planned end; ``NOT_YET`` when there is none."""
    before = grid.planned[pos, :PRODUCTION]
    known = before != NOT_YET
    # The last known column: flip, take first True.
    idx = PRODUCTION - 1 - known[:, ::-1].argmax(axis=1)
    start = before[np.arange(len(pos)), idx]
    return np.where(known.any(axis=1), start, NOT_YET)


def production_end_ns(grid: StageGrid, pos: np.ndarray) -> np.ndarray:
    return grid.planned[pos, PRODUCTION]


def stage_features(
    dataset: Dataset, q: Queries, grid: StageGrid, slack_days: np.ndarray
) -> dict[str, np.ndarray]:
    """Current stage, remaining planned lead time, and each stage's days behind plan."""
    has = grid.has[q.pos]
    planned = grid.planned[q.pos]
    completed = grid.completed[q.pos]
    t = q.t[:, None]
    done = has & (completed <= t)
    pending = has & ~done
    planned_known = has & (planned != NOT_YET)
    any_stage = has.any(axis=1)

    cur = first_true(pending)
    stage_names = np.array(STAGES, dtype=object)
    current = np.where(cur >= 0, stage_names[np.maximum(cur, 0)], "done").astype(object)
    current[~any_stage] = np.nan

    pending_planned = np.where(pending & planned_known, planned, np.iinfo(np.int64).min)
    latest = pending_planned.max(axis=1)
    remaining = np.maximum(0, latest - q.t) / DAY_NS
    remaining = np.where(latest == np.iinfo(np.int64).min, np.nan, remaining)
    remaining = np.where(pending.any(axis=1), remaining, 0.0)
    remaining[~any_stage] = np.nan

    n_has = has.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_has > 0, done.sum(axis=1) / n_has, np.nan)

    out: dict[str, np.ndarray] = {
        "current_stage": current,
        "remaining_planned_days": remaining,
        "plan_margin_days": slack_days - remaining,
        "share_stages_completed": share,
    }
    late_done = (completed - planned) / DAY_NS
    overdue = np.maximum(0, t - planned) / DAY_NS
    behind = np.where(done, late_done, overdue)
    behind = np.where(planned_known, behind, np.nan)
    for i, s in enumerate(STAGES):
        out[f"{s}_days_behind"] = behind[:, i]
    return out


def delay_rate_features(dataset: Dataset, q: Queries, grid: StageGrid) -> dict[str, np.ndarray]:
    """Share of recent quality/warehouse/shipping stages that finished after their planned end,
    by plant, product group and customer group, over the window before as_of (``grid``:
    ``stage_grid(dataset)``, whose rows' order positions are reused)."""
    stages = dataset.table("order_stages")
    orders = dataset.orders
    row = grid.row
    completed = to_ns(stages["completed_at"]) if "completed_at" in stages.columns else None
    planned = to_ns(stages["planned_end"]) if "planned_end" in stages.columns else None
    out: dict[str, np.ndarray] = {}
    window = DELAY_RATE_WINDOW_DAYS * DAY_NS
    group_cols = {
        "plant": "plant_id",
        "product_group": group_column(orders, PRODUCT_GROUP_COLUMNS, "product_id"),
        "customer_group": group_column(orders, CUSTOMER_GROUP_COLUMNS, "customer_id"),
    }
    # Each group as integer codes of the orders' values (missing: no group), read at the stage
    # rows' orders and at the queries' orders (rows of ``orders`` too): the same groups as the
    # values, without hashing the text again for each of the nine timelines.
    codes = {
        g: pd.factorize(orders[col].to_numpy(dtype=object))[0] for g, col in group_cols.items()
    }
    created = to_ns(orders["created_at"])
    for s in DELAY_RATE_STAGES:
        names = [f"{s}_delay_rate_{g}_{DELAY_RATE_WINDOW_DAYS}d" for g in group_cols]
        if completed is None or planned is None:
            for name in names:
                out[name] = np.full(len(q), np.nan)
            continue
        sel = (
            (grid.col == STAGES.index(s))
            & (row >= 0)
            & (completed != NOT_YET)
            & (planned != NOT_YET)
        )
        r = row[sel]
        # Known when completed, and never before its order existed.
        known = EventTimes(np.maximum(completed[sel], created[r]))  # sorted once, for 3 groups
        late = (completed[sel] - planned[sel] > DELAY_THRESHOLD_DAYS * DAY_NS).astype(np.float64)
        for name, g in zip(names, group_cols, strict=True):
            sums = Timeline(codes[g][r], known).sums_at(
                {"n": np.ones(len(r)), "late": late}, codes[g][q.pos], q.t, windows_ns=(window,)
            )
            n = sums[f"n@{window}"]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[name] = np.where(n > 0, sums[f"late@{window}"] / n, np.nan)
    return out
