"""The in-memory dataset: the contract's tables as typed pandas frames, and the point-in-time rule.

Canonical dtypes (what every layer above may rely on once a dataset is loaded):
- ids, text and stage columns: ``object`` holding ``str``; missing values are ``NaN``/``None``;
- timestamps: ``datetime64[ns, UTC]`` (offset-less inputs were read in the dataset's time zone);
- dates: ``datetime64[ns]`` without a zone, at midnight: a calendar date;
- numbers: ``float64``.
Extra columns are kept as they came.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pytz

from data.contract import CONTRACT_VERSION, EVENT_COLUMNS, OPTIONAL_TABLES, TABLES


def to_utc_timestamp(value: object, tz: str = "UTC") -> pd.Timestamp:
    """A point in time as an aware UTC timestamp; a naive one is read in ``tz``."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.tz_convert("UTC")


def parse_as_of(value: str | None, tz: str = "UTC") -> pd.Timestamp | None:
    """A time as a person gave it (``--as-of``, ``--cutoff``: ISO 8601, without an offset in
    the dataset's zone ``tz``) as the UTC timestamp the layers below take, parsed once at the
    command line; None stays None (the layers then take the dataset's snapshot time). A local
    time the clocks skipped or passed twice (a daylight-saving change) is a ``ValueError``
    saying to give its offset."""
    if value is None:
        return None
    try:
        return to_utc_timestamp(value, tz)
    except (pytz.NonExistentTimeError, pytz.AmbiguousTimeError) as exc:
        what = "does not exist" if isinstance(exc, pytz.NonExistentTimeError) else "is ambiguous"
        raise ValueError(
            f"{value} {what} in {tz} (a daylight-saving change); give the time with its UTC "
            "offset (e.g. ...T02:30-05:00) or in UTC (...Z)"
        ) from None


def local_date(ts: pd.Series, tz: str) -> pd.Series:
    """Calendar dates (naive midnight) of aware timestamps, as seen in the dataset's time zone."""
    return ts.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


@dataclass(frozen=True)
class Dataset:
    """The contract's tables; optional tables are ``None`` when the source does not have them."""

    orders: pd.DataFrame
    order_stages: pd.DataFrame | None = None
    purchase_orders: pd.DataFrame | None = None
    capacity: pd.DataFrame | None = None
    tz: str = "UTC"
    """The dataset's time zone (dates are compared in it)."""
    source: str = ""
    """Where the dataset was loaded from, for messages."""
    capacity_horizon_days: int = 14
    """A capacity row without ``recorded_at`` counts as known this many days before its date."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows skipped on purpose while loading, by reason (reported, never silent)."""

    def tables(self) -> dict[str, pd.DataFrame]:
        """The present tables by contract name."""
        out = {"orders": self.orders}
        for name in OPTIONAL_TABLES:
            frame = getattr(self, name)
            if frame is not None:
                out[name] = frame
        return out

    def has(self, table: str) -> bool:
        return getattr(self, table, None) is not None

    def table(self, name: str) -> pd.DataFrame:
        """A present table by contract name (callers that can do without it check :meth:`has`)."""
        frame = getattr(self, name) if name in TABLES else None
        if frame is None:
            origin = f" from {self.source}" if self.source else ""
            raise ValueError(
                f"the dataset{origin} has no {name} table, which this step needs; "
                f"add {name}.csv or {name}.parquet (or a SQL table {name}) to the source"
            )
        return frame

    def snapshot_time(self) -> pd.Timestamp:
        """The latest recorded event in the dataset (the contract's snapshot time, UTC)."""
        latest: list[pd.Timestamp] = []
        for name, frame in self.tables().items():
            for col in EVENT_COLUMNS[name]:
                if col in frame.columns:
                    value = frame[col].max()
                    if pd.notna(value):
                        latest.append(value)
        if not latest:
            raise ValueError("the dataset records no event: it has no orders")
        return max(latest)

    def as_of(self, value: object | None) -> pd.Timestamp:
        """``value`` as a UTC timestamp (naive values in the dataset's zone), or the snapshot
        time when ``value`` is None: commands never take "now" from the clock."""
        if value is None:
            return self.snapshot_time()
        return to_utc_timestamp(value, self.tz)

    def cut(self, as_of: object) -> Dataset:
        """The dataset as it was known at ``as_of`` (the contract's point-in-time rule): rows
        created after it do not exist, timestamps after it are empty."""
        t = to_utc_timestamp(as_of, self.tz)
        orders = self.orders[self.orders["created_at"] <= t].copy()
        for col in ("delivered_at", "cancelled_at"):
            if col in orders.columns:
                orders[col] = orders[col].where(orders[col] <= t)

        stages = None
        if self.order_stages is not None:
            stages = self.order_stages[
                self.order_stages["order_id"].isin(orders["order_id"])
            ].copy()
            for col in ("started_at", "completed_at"):
                if col in stages.columns:
                    stages[col] = stages[col].where(stages[col] <= t)

        pos = None
        if self.purchase_orders is not None:
            pos = self.purchase_orders[self.purchase_orders["created_at"] <= t].copy()
            if "received_at" in pos.columns:
                pos["received_at"] = pos["received_at"].where(pos["received_at"] <= t)

        cap = None
        if self.capacity is not None:
            cap = self.capacity[
                capacity_known_at(self.capacity, self.capacity_horizon_days, self.tz) <= t
            ].copy()

        return replace(
            self,
            orders=orders.reset_index(drop=True),
            order_stages=None if stages is None else stages.reset_index(drop=True),
            purchase_orders=None if pos is None else pos.reset_index(drop=True),
            capacity=None if cap is None else cap.reset_index(drop=True),
        )

    def fingerprint(self) -> str:
        """A stable hash of the tables' contents and the contract version, whatever the order
        of their rows and columns."""
        digest = hashlib.sha256(f"contract-v{CONTRACT_VERSION}".encode())
        for name, frame in sorted(self.tables().items()):
            digest.update(name.encode())
            cols = sorted(frame.columns)
            digest.update(",".join(cols).encode())
            # One hash per row, sorted as numbers: the rows' order does not count, and sorting
            # 1.3M stage rows by their text keys first cost more than hashing them.
            hashed = np.sort(pd.util.hash_pandas_object(frame[cols], index=False).to_numpy())
            digest.update(hashed.tobytes())
        return digest.hexdigest()[:16]


def capacity_known_at(capacity: pd.DataFrame, horizon_days: int, tz: str) -> pd.Series:
    """When each capacity row became known: its ``recorded_at``, else the start of its day (in
    the dataset's zone) minus the planning horizon."""
    default = (
        (capacity["date"] - pd.Timedelta(days=horizon_days)).dt.tz_localize(tz).dt.tz_convert("UTC")
    )
    if "recorded_at" in capacity.columns:
        return capacity["recorded_at"].fillna(default)
    return default


def order_outcomes(orders: pd.DataFrame, tz: str, grace_days: int = 0) -> pd.DataFrame:
    """Per delivered order: ``late`` (bool) and ``days_late`` (delivery date minus due date, in
    days, negative when early). Undelivered orders get NaN."""
    delivered = local_date(orders["delivered_at"], tz)
    days = (delivered - orders["due_date"]).dt.days
    late = (days > grace_days).where(days.notna())
    return pd.DataFrame({"order_id": orders["order_id"], "days_late": days, "late": late})


def open_orders(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Orders open at ``as_of``: created by then, neither delivered nor cancelled by then."""
    mask = orders["created_at"] <= as_of
    for col in ("delivered_at", "cancelled_at"):
        if col in orders.columns:
            mask &= ~(orders[col] <= as_of)
    return orders[mask]
