"""The (order_id, as_of) pairs features are asked for, checked and lined up with their orders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.dataset import Dataset, to_utc_timestamp
from features.registry import CUSTOMER_GROUP_COLUMNS, PRODUCT_GROUP_COLUMNS
from features.timeline import local_midnight_ns, to_ns


@dataclass(frozen=True)
class Queries:
    """Queries lined up with their order rows; every array has one entry per query."""

    order_id: np.ndarray
    as_of: pd.Series
    """UTC timestamps."""
    t: np.ndarray
    """as_of in int64 UTC nanoseconds."""
    pos: np.ndarray
    """Row position of each query's order in ``dataset.orders``."""
    rows: pd.DataFrame
    """The queries' order rows (a copy), index 0..n-1."""
    created: np.ndarray
    due_end: np.ndarray
    """End of the due date in the dataset's zone (UTC ns): delivering after it is late."""
    product_group: np.ndarray
    customer_group: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


def _as_utc(values: pd.Series, tz: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.as_unit("ns")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize(tz).dt.tz_convert("UTC").dt.as_unit("ns")
    return values.map(lambda v: to_utc_timestamp(v, tz)).astype("datetime64[ns, UTC]")


def group_column(orders: pd.DataFrame, candidates: tuple[str, ...], fallback: str) -> str:
    """The first grouping column present in ``orders`` (e.g. product_family), else ``fallback``."""
    return next((c for c in candidates if c in orders.columns), fallback)


def prepare_queries(dataset: Dataset, queries: pd.DataFrame) -> Queries:
    """Check the queries and line them up with their orders."""
    missing_cols = {"order_id", "as_of"} - set(queries.columns)
    if missing_cols:
        raise ValueError(f"queries need columns order_id and as_of; missing {sorted(missing_cols)}")
    orders = dataset.orders
    as_of = _as_utc(queries["as_of"].reset_index(drop=True), dataset.tz)
    if as_of.isna().any():
        raise ValueError("queries: every as_of must be a timestamp (found empty values)")
    order_id = queries["order_id"].to_numpy(dtype=object)
    pos = pd.Index(orders["order_id"]).get_indexer(order_id)
    if (pos < 0).any():
        unknown = pd.unique(order_id[pos < 0])[:5]
        raise ValueError(
            f"{int((pos < 0).sum())} queries name orders not in the dataset, e.g. "
            f"{list(unknown)}; ask only for order ids of its orders table"
        )
    rows = orders.iloc[pos].reset_index(drop=True)
    t = to_ns(as_of)
    created = to_ns(rows["created_at"])
    early = created > t
    if early.any():
        first = np.flatnonzero(early)[:5]
        raise ValueError(
            f"{int(early.sum())} queries ask about an order before it was created (an order "
            f"does not exist before its created_at), e.g. {list(order_id[first])}; use as_of >= "
            "created_at"
        )
    product_col = group_column(orders, PRODUCT_GROUP_COLUMNS, "product_id")
    customer_col = group_column(orders, CUSTOMER_GROUP_COLUMNS, "customer_id")
    return Queries(
        order_id=order_id,
        as_of=as_of,
        t=t,
        pos=pos,
        rows=rows,
        created=created,
        due_end=local_midnight_ns(rows["due_date"], dataset.tz, plus_days=1),
        product_group=rows[product_col].to_numpy(dtype=object),
        customer_group=rows[customer_col].to_numpy(dtype=object),
    )
