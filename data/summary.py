"""What a dataset holds, at a glance: the figures ``otd-risk validate`` prints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from data.contract import TABLES
from data.dataset import Dataset, open_orders, order_outcomes


class DatasetSummary(BaseModel):
    """Rows per table and the state of the orders at the dataset's snapshot time."""

    source: str
    tz: str
    rows: dict[str, int]
    """Rows per present table."""
    tables_present: list[str]
    tables_absent: list[str]
    """Optional contract tables the source does not have (features that need them are off)."""
    first_created_at: datetime | None
    """None when the orders table has no rows."""
    snapshot_time: datetime | None
    """The latest recorded event: the dataset's "now" (None without any order)."""
    orders_open: int
    orders_delivered: int
    orders_cancelled: int
    """Cancelled orders are neither open nor training examples."""
    orders_late: int
    """Delivered (not cancelled) orders whose delivery date is after due date + grace days."""
    late_rate: float | None
    """Late among delivered, not cancelled orders; None when none was delivered."""
    grace_days: int
    skipped: dict[str, int] = Field(default_factory=dict)
    """Rows skipped on purpose while loading, by reason."""


def summarize(dataset: Dataset, grace_days: int = 0) -> DatasetSummary:
    """Summarise a (validated) dataset at its snapshot time."""
    orders = dataset.orders
    tables = dataset.tables()
    first_created_at: datetime | None = None
    snapshot_time: datetime | None = None
    n_open = n_delivered = n_cancelled = n_late = 0
    late_rate: float | None = None
    if not orders.empty:
        snapshot = dataset.snapshot_time()
        first_created_at = orders["created_at"].min().to_pydatetime()
        snapshot_time = snapshot.to_pydatetime()
        n_open = len(open_orders(orders, snapshot))
        cancelled = orders["cancelled_at"].le(snapshot) if "cancelled_at" in orders else None
        delivered = orders["delivered_at"].le(snapshot) if "delivered_at" in orders else None
        n_cancelled = int(cancelled.sum()) if cancelled is not None else 0
        if delivered is not None:
            kept = delivered & ~cancelled if cancelled is not None else delivered
            n_delivered = int(kept.sum())
            if n_delivered:
                late = order_outcomes(orders[kept], dataset.tz, grace_days)["late"]
                n_late = int(late.astype(bool).sum())
                late_rate = n_late / n_delivered
    return DatasetSummary(
        source=dataset.source,
        tz=dataset.tz,
        rows={name: len(frame) for name, frame in tables.items()},
        tables_present=list(tables),
        tables_absent=[name for name in TABLES if name not in tables],
        first_created_at=first_created_at,
        snapshot_time=snapshot_time,
        orders_open=n_open,
        orders_delivered=n_delivered,
        orders_cancelled=n_cancelled,
        orders_late=n_late,
        late_rate=late_rate,
        grace_days=grace_days,
        skipped=dict(dataset.skipped),
    )
