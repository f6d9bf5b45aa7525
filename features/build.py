"""Point-in-time features: one row per (order, as_of), from what was known at that as_of only.

Categorical features (``priority``, ``current_stage``, text extra columns) come out as ``object``
columns of strings (missing = NaN), so the same order gives the same frame whatever else the
dataset holds; the model encodes them with the levels it learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.dataset import Dataset, open_orders
from features.capacity_features import capacity_features
from features.duration_features import (
    last_season_features,
    lead_time_features,
    stage_duration_features,
)
from features.forking import Pending, run_forked
from features.history_features import category_history_features
from features.order_features import order_features
from features.procurement_features import procurement_features
from features.queries import Queries, prepare_queries
from features.registry import CONTEXT_COLUMNS, FeatureSpec, feature_specs, rate_key_columns
from features.stage_features import (
    delay_rate_features,
    production_end_ns,
    production_start_ns,
    stage_features,
    stage_grid,
)

FORK_MIN_QUERIES = 10_000
"""Below this many queries the stage-duration features are built in this process: a fork and
the result's trip back cost more than the child saves."""


def build_features_at(
    dataset: Dataset,
    queries: pd.DataFrame,
    *,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Features for each (order_id, as_of) row of ``queries`` (as_of may differ per row).

    Returns one row per query in the same order: ``order_id``, ``as_of`` (UTC), every feature of
    ``feature_specs(dataset, extra_order_columns, rate_pairs)`` in that order, then the ``ctx_*``
    columns. ``rate_pairs``: pairs of order columns whose joint history becomes features too
    (training chooses them, the model remembers them).
    """
    specs = feature_specs(dataset, extra_order_columns, rate_pairs)
    q = prepare_queries(dataset, queries)
    values: dict[str, np.ndarray] = {}
    values.update(order_features(dataset, q))
    slack = values["slack_days"]
    grid = stage_grid(dataset) if dataset.has("order_stages") else None
    durations: Pending[dict[str, np.ndarray]] | None = None
    if grid is not None:
        # The history-heaviest family (a third of the time on 100,000 orders) in a forked
        # child while this process builds the others, where allowed (features.forking).
        durations = run_forked(
            lambda: stage_duration_features(dataset, q, grid, slack),
            worth_it=len(q) >= FORK_MIN_QUERIES,
        )
    values.update(lead_time_features(dataset, q, slack))
    keys = [(c,) for c in rate_key_columns(dataset, extra_order_columns)]
    values.update(category_history_features(dataset, q, keys + [tuple(p) for p in rate_pairs]))
    context = _context(dataset, q)
    if grid is not None:
        staged = stage_features(dataset, q, grid, slack)
        values.update(staged)
        values.update(last_season_features(dataset, q, grid))
        values.update(delay_rate_features(dataset, q, grid))
        context["ctx_current_stage"] = staged["current_stage"]
    if dataset.has("purchase_orders"):
        start = production_start_ns(grid, q.pos) if grid is not None else None
        procurement, supplier = procurement_features(dataset, q, start)
        values.update(procurement)
        context["ctx_supplier_id"] = supplier
    if dataset.has("capacity"):
        window = None
        if grid is not None:
            window = (production_start_ns(grid, q.pos), production_end_ns(grid, q.pos))
        values.update(capacity_features(dataset, q, window))
    if durations is not None:
        values.update(durations.result())
    for spec in specs:
        if spec.column is not None and spec.name not in values:
            values[spec.name] = _extra_values(q, spec)

    # Each column cast before the frame is made: casting column by column afterwards leaves a
    # wide frame fragmented (one block per column, and pandas' PerformanceWarning downstream).
    columns: dict[str, object] = {"order_id": q.order_id, "as_of": q.as_of.array}
    for spec in specs:
        dtype = np.float64 if spec.kind == "numeric" else object
        columns[spec.name] = pd.Series(values[spec.name]).astype(dtype).to_numpy()
    for name in CONTEXT_COLUMNS:
        if name in context:
            columns[name] = context[name]
    # copy=False: the arrays become the frame's columns as they are. Consolidating them (the
    # default) copied every feature two to three times (pandas groups runs of one dtype, and the
    # numeric and text features alternate): 0.4-0.8 s of a first build of 105,245 rows (four
    # alternating runs: 2.4-3.2 s against 2.9-3.8 s); selecting and encoding it later is as fast
    # (0.06-0.10 s either way), and nothing inserts columns into it (no PerformanceWarning in
    # the tests, run with it as an error).
    return pd.DataFrame(columns, copy=False)


def history_feature_frame(
    dataset: Dataset, queries: pd.DataFrame, keys: Sequence[Sequence[str]]
) -> pd.DataFrame:
    """Only the history features of ``keys`` (columns or pairs of order columns) for each
    (order_id, as_of) query, in the queries' order: for adding pairs chosen after the rest of a
    training set was built (the same numbers ``build_features_at`` gives them)."""
    q = prepare_queries(dataset, queries)
    return pd.DataFrame(category_history_features(dataset, q, [tuple(k) for k in keys]))


def _extra_values(q: Queries, spec: FeatureSpec) -> np.ndarray:
    column = q.rows[spec.column]
    if spec.kind == "numeric":
        # Numbers read as text (CSV) were declared numeric by the registry: convert them here.
        return pd.to_numeric(column, errors="coerce").astype(np.float64).to_numpy()
    # Text categories as strings; numbers-as-codes stay readable ("3", not "3.0").
    return column.map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v)).to_numpy(
        dtype=object
    )


def _context(dataset: Dataset, q: Queries) -> dict[str, np.ndarray]:
    rows = q.rows
    return {
        "ctx_customer_id": rows["customer_id"].to_numpy(dtype=object),
        "ctx_product_id": rows["product_id"].to_numpy(dtype=object),
        "ctx_plant_id": rows["plant_id"].to_numpy(dtype=object),
        "ctx_due_date": rows["due_date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
        "ctx_product_group": q.product_group,
        "ctx_customer_group": q.customer_group,
    }


def build_features(
    dataset: Dataset,
    orders: pd.DataFrame | Sequence[str],
    as_of: object,
    *,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Features of ``orders`` (a frame with ``order_id`` or a sequence of ids) as of one time;
    indexed by order_id."""
    ids = orders["order_id"] if isinstance(orders, pd.DataFrame) else pd.Series(list(orders))
    t = dataset.as_of(as_of)
    queries = pd.DataFrame(
        {"order_id": ids.to_numpy(dtype=object), "as_of": pd.Series(t, index=range(len(ids)))}
    )
    frame = build_features_at(
        dataset, queries, extra_order_columns=extra_order_columns, rate_pairs=rate_pairs
    )
    # In place: the frame is this call's own, and set_index would copy every column of it
    # (0.28 s of 105,245 orders x 120 columns).
    frame.set_index("order_id", inplace=True)
    return frame


def open_order_features(
    dataset: Dataset,
    as_of: object | None = None,
    *,
    extra_order_columns: Sequence[str] = (),
    rate_pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Features of the orders open at ``as_of`` (default: the dataset's snapshot time)."""
    t = dataset.as_of(as_of)
    return build_features(
        dataset,
        open_orders(dataset.orders, t),
        t,
        extra_order_columns=extra_order_columns,
        rate_pairs=rate_pairs,
    )
