"""Procurement features: the order's open purchase orders and its suppliers' punctuality.

A purchase order's outcome is known (the contract's rule) once it is received, or once its
promised date is over while it is still open: then it is known to be late. So a late PO counts as
late from the end of its promised date, whether or not it arrived later, and an on-time PO counts
from its receipt. Both are exactly what a dataset cut at as_of shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.dataset import Dataset
from features.queries import Queries
from features.registry import SUPPLIER_WINDOWS_DAYS
from features.timeline import (
    DAY_NS,
    NOT_YET,
    Timeline,
    day_number,
    local_day_number,
    local_midnight_ns,
    to_ns,
)

ASSURED_COLUMN = "otd_risk_assured"
"""Set only by a what-if (``serving.whatif``) on a copy of the data: a purchase order it assures
will arrive on its promised date no longer weighs on its order as an open one (it is still
unreceived, so the supplier's record does not count it). A dataset never holds it."""


def procurement_features(
    dataset: Dataset, q: Queries, production_start: np.ndarray | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Open-PO and worst-supplier features per query, and the worst supplier's id (context)."""
    pos_table = dataset.table("purchase_orders")
    n = len(q)
    created = to_ns(pos_table["created_at"])
    received = (
        to_ns(pos_table["received_at"])
        if "received_at" in pos_table.columns
        else np.full(len(pos_table), NOT_YET)
    )
    received = np.where(received == NOT_YET, NOT_YET, np.maximum(received, created))
    promised_end = local_midnight_ns(pos_table["promised_date"], dataset.tz, plus_days=1)
    supplier = pos_table["supplier_id"].to_numpy(dtype=object)

    # Supplier history: outcome events (on time / known late) and lateness of received POs.
    on_time = received < promised_end
    known = np.where(on_time, received, np.maximum(created, promised_end))
    outcome = Timeline(supplier, known)
    got = received != NOT_YET
    promised_day = day_number(pos_table["promised_date"])
    recv_day = np.where(got, local_day_number(np.where(got, received, 0), dataset.tz), 0)
    days_late = np.where(got, np.maximum(0, recv_day - promised_day), 0).astype(np.float64)
    # numpy's stubs take where(c, x, None) for the one-argument form (it returns an array).
    supplier_if_received = np.where(got, supplier, None)
    lateness = Timeline(supplier_if_received, np.where(got, received, NOT_YET))  # type: ignore[arg-type]

    # The order's open POs at each query's as_of.
    order_row = (
        pd.Index(dataset.orders["order_id"]).get_indexer(pos_table["order_id"])
        if "order_id" in pos_table.columns
        else np.full(len(pos_table), -1)
    )
    linked = np.flatnonzero(order_row >= 0)
    pairs = pd.DataFrame({"qi": np.arange(n), "row": q.pos}).merge(
        pd.DataFrame({"row": order_row[linked], "po": linked}), on="row", how="inner"
    )
    qi = pairs["qi"].to_numpy()
    po = pairs["po"].to_numpy()
    t = q.t[qi]
    is_open = (created[po] <= t) & (received[po] > t)
    if ASSURED_COLUMN in pos_table.columns:
        is_open &= ~pos_table[ASSURED_COLUMN].to_numpy(dtype=bool)[po]
    qi, po, t = qi[is_open], po[is_open], t[is_open]

    open_count = np.bincount(qi, minlength=n).astype(np.float64)
    past = (t - promised_end[po]) / DAY_NS
    max_past = _group_max(qi, past, n)
    out: dict[str, np.ndarray] = {
        "open_po_count": open_count,
        "po_max_days_past_promised": max_past,
    }
    if production_start is not None:
        start = production_start[qi]
        gap = np.where(start == NOT_YET, np.nan, (promised_end[po] - start) / DAY_NS)
        out["po_promised_vs_production_start"] = _group_max(qi, gap, n)

    # Each open PO's supplier figures as of the query, then the worst supplier per query.
    windows = tuple(w * DAY_NS for w in SUPPLIER_WINDOWS_DAYS)
    sup = supplier[po]
    o = outcome.sums_at(
        {"n": np.ones(len(supplier)), "ok": on_time.astype(np.float64)}, sup, t, windows_ns=windows
    )
    la = lateness.sums_at(
        {"n": got.astype(np.float64), "days": days_late}, sup, t, windows_ns=windows
    )
    per_pair: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for w_days, w in zip(SUPPLIER_WINDOWS_DAYS, windows, strict=True):
            per_pair[f"supplier_ontime_rate_{w_days}d"] = np.where(
                o[f"n@{w}"] > 0, o[f"ok@{w}"] / o[f"n@{w}"], np.nan
            )
            per_pair[f"supplier_mean_days_late_{w_days}d"] = np.where(
                la[f"n@{w}"] > 0, la[f"days@{w}"] / la[f"n@{w}"], np.nan
            )
    per_pair["supplier_ontime_trend"] = (
        per_pair[f"supplier_ontime_rate_{SUPPLIER_WINDOWS_DAYS[0]}d"]
        - per_pair[f"supplier_ontime_rate_{SUPPLIER_WINDOWS_DAYS[-1]}d"]
    )

    # Worst = lowest 90-day on-time rate; suppliers without history rank after, ties by id.
    rank_rate = np.nan_to_num(per_pair["supplier_ontime_rate_90d"], nan=2.0)
    frame = pd.DataFrame({"qi": qi, "rate": rank_rate, "sup": sup.astype(str)})
    chosen = frame.sort_values(["qi", "rate", "sup"], kind="stable").drop_duplicates("qi").index
    chosen = chosen.to_numpy()
    target = qi[chosen]
    for name, values in per_pair.items():
        col = np.full(n, np.nan)
        col[target] = values[chosen]
        out[name] = col
    supplier_ctx = np.full(n, np.nan, dtype=object)
    supplier_ctx[target] = sup[chosen]
    return out, supplier_ctx


def _group_max(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Max of ``values`` per group id in 0..n-1; NaN for groups without values."""
    found = pd.Series(values).groupby(groups).max()
    out = np.full(n, np.nan)
    out[found.index.to_numpy()] = found.to_numpy()
    return out
