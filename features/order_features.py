"""Order features: slack, age, quoted lead time, size, priority, customer/product history, and
the plant's backlog. All from the orders table, as known at each query's as_of."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.dataset import Dataset, local_date
from features.queries import Queries
from features.registry import HISTORY_WINDOW_DAYS
from features.timeline import DAY_NS, Timeline, to_ns


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def order_features(dataset: Dataset, q: Queries) -> dict[str, np.ndarray]:
    """Order-stage features and the plant backlog, one value per query."""
    orders = dataset.orders
    out: dict[str, np.ndarray] = {
        "slack_days": (q.due_end - q.t) / DAY_NS,
        "order_age_days": (q.t - q.created) / DAY_NS,
        "quoted_lead_days": (q.due_end - q.created) / DAY_NS,
    }

    # The product's usual quantity: the mean over its orders received by as_of.
    created_all = to_ns(orders["created_at"])
    qty = orders["quantity"].to_numpy(dtype=np.float64)
    sums = Timeline(orders["product_id"].to_numpy(dtype=object), created_all).sums_at(
        {"qty": qty, "n": np.ones(len(orders))}, q.rows["product_id"].to_numpy(dtype=object), q.t
    )
    norm = _rate(sums["qty"], sums["n"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["quantity_vs_product_norm"] = np.where(
            norm > 0, q.rows["quantity"].to_numpy(dtype=np.float64) / norm, np.nan
        )

    if "priority" in orders.columns:
        out["priority"] = q.rows["priority"].to_numpy(dtype=object)

    # History: orders delivered in the window before as_of, and how many of them were on time.
    # A delivery is known from its delivered_at (never before the order existed).
    if "delivered_at" in orders.columns:
        delivered = to_ns(orders["delivered_at"])
        known = np.maximum(delivered, created_all)
        days_late = (local_date(orders["delivered_at"], dataset.tz) - orders["due_date"]).dt.days
        late = (days_late > 0).to_numpy(dtype=np.float64)
    else:
        known = np.full(len(orders), np.iinfo(np.int64).max)
        late = np.zeros(len(orders))
    window = HISTORY_WINDOW_DAYS * DAY_NS
    for who in ("customer", "product"):
        key = f"{who}_id"
        s = Timeline(orders[key].to_numpy(dtype=object), known).sums_at(
            {"n": np.ones(len(orders)), "late": late},
            q.rows[key].to_numpy(dtype=object),
            q.t,
            windows_ns=(window,),
        )
        n, n_late = s[f"n@{window}"], s[f"late@{window}"]
        out[f"{who}_ontime_rate_{HISTORY_WINDOW_DAYS}d"] = _rate(n - n_late, n)
        out[f"{who}_delivered_{HISTORY_WINDOW_DAYS}d"] = n

    out["plant_open_orders"] = _plant_backlog(orders, q)
    return out


def _plant_backlog(orders: pd.DataFrame, q: Queries) -> np.ndarray:
    """Orders open at the plant at as_of: +1 when received, -1 when delivered or cancelled."""
    created = to_ns(orders["created_at"])
    closed = np.full(len(orders), np.iinfo(np.int64).max)
    for col in ("delivered_at", "cancelled_at"):
        if col in orders.columns:
            closed = np.minimum(closed, to_ns(orders[col]))
    closed = np.where(closed == np.iinfo(np.int64).max, closed, np.maximum(closed, created))
    plant = orders["plant_id"].to_numpy(dtype=object)
    timeline = Timeline(np.concatenate([plant, plant]), np.concatenate([created, closed]))
    step = np.concatenate([np.ones(len(orders)), -np.ones(len(orders))])
    return timeline.sums_at({"open": step}, q.rows["plant_id"].to_numpy(dtype=object), q.t)["open"]
