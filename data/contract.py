"""The otd-risk data contract (v1), declared once.

Every table, column, type and rule of the contract lives here. Loading, validation, the simulator,
SQL schemas and documentation are derived from these declarations, never from a hand-kept list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CONTRACT_VERSION = "1"

STAGES: tuple[str, ...] = (
    "confirmation",
    "planning",
    "procurement",
    "production",
    "quality",
    "warehouse",
    "shipping",
)
"""The OTD process stages, in process order."""

EXPLANATION_STAGES: tuple[str, ...] = ("order", *STAGES)
"""Stages a feature (and so a share of the risk) can belong to: the order, then the process."""

ColumnKind = Literal["id", "text", "timestamp", "date", "number", "stage"]


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: ColumnKind
    required: bool = True
    """The column must be present."""
    nullable: bool = False
    """Empty values are allowed."""
    unique: bool = False
    min_value: float | None = None
    """Numbers must be >= this."""
    strictly_positive: bool = False
    """Numbers must be > 0."""
    not_before: str | None = None
    """Timestamps must be at or after this column of the same row, when both are present."""
    meaning: str = ""


@dataclass(frozen=True)
class Table:
    """One contract table."""

    name: str
    columns: tuple[Column, ...]
    required: bool = False
    meaning: str = ""
    key: tuple[str, ...] = field(default=())
    """Columns whose combination is unique."""

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def columns_of_kind(self, *kinds: ColumnKind) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind in kinds)

    @property
    def row_id(self) -> str | None:
        """The id that tells a person which row a message is about: the table's unique id,
        else the order it belongs to; None for tables without one (capacity)."""
        for col in self.columns:
            if col.unique and col.kind == "id":
                return col.name
        return "order_id" if "order_id" in self.column_names else None


ORDERS = Table(
    name="orders",
    required=True,
    key=("order_id",),
    meaning="One row per customer order line; the unit of prediction.",
    columns=(
        Column("order_id", "id", unique=True, meaning="the order line's key"),
        Column("customer_id", "id"),
        Column("product_id", "id"),
        Column("plant_id", "id", meaning="the site that fulfils the order"),
        Column("quantity", "number", strictly_positive=True),
        Column("created_at", "timestamp", meaning="when the order was received"),
        Column("due_date", "date", meaning="the delivery date committed to the customer"),
        Column(
            "delivered_at",
            "timestamp",
            required=False,
            nullable=True,
            not_before="created_at",
            meaning="when the customer received it; empty = not delivered yet",
        ),
        Column(
            "cancelled_at",
            "timestamp",
            required=False,
            nullable=True,
            not_before="created_at",
            meaning="when it was cancelled",
        ),
        Column(
            "priority",
            "text",
            required=False,
            nullable=True,
            meaning="e.g. normal, rush; empty = unknown",
        ),
    ),
)

ORDER_STAGES = Table(
    name="order_stages",
    key=("order_id", "stage"),
    meaning="Where each order stands in the OTD process: one row per (order, stage).",
    columns=(
        Column("order_id", "id", meaning="references orders"),
        Column("stage", "stage"),
        Column(
            "planned_end",
            "timestamp",
            required=False,
            nullable=True,
            meaning="planned completion of this stage, known from the order's creation",
        ),
        Column("started_at", "timestamp", required=False, nullable=True),
        Column("completed_at", "timestamp", required=False, nullable=True, not_before="started_at"),
    ),
)

PURCHASE_ORDERS = Table(
    name="purchase_orders",
    key=("po_id",),
    meaning="Purchase orders to suppliers: supplier punctuality.",
    columns=(
        Column("po_id", "id", unique=True),
        Column("supplier_id", "id"),
        Column("material_id", "id", required=False, nullable=True),
        Column(
            "order_id",
            "id",
            required=False,
            nullable=True,
            meaning="the customer order this purchase supplies; empty = stock replenishment",
        ),
        Column("created_at", "timestamp"),
        Column("promised_date", "date", meaning="the supplier's committed delivery date"),
        Column("received_at", "timestamp", required=False, nullable=True),
        Column("quantity", "number", required=False, nullable=True, strictly_positive=True),
    ),
)

CAPACITY = Table(
    name="capacity",
    key=("plant_id", "date", "recorded_at"),
    meaning="Load against capacity per plant and production day.",
    columns=(
        Column("plant_id", "id"),
        Column("date", "date", meaning="the production day"),
        Column("capacity_hours", "number", min_value=0.0),
        Column("load_hours", "number", min_value=0.0),
        Column(
            "recorded_at",
            "timestamp",
            required=False,
            nullable=True,
            meaning="when this plan figure was recorded",
        ),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, ORDER_STAGES, PURCHASE_ORDERS, CAPACITY)}
"""All contract tables by name, in dependency order (orders first)."""
OPTIONAL_TABLES: tuple[str, ...] = tuple(name for name in TABLES if name != "orders")
"""The tables a dataset may lack."""

EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("created_at", "delivered_at", "cancelled_at"),
    "order_stages": ("started_at", "completed_at"),
    "purchase_orders": ("created_at", "received_at"),
    "capacity": ("recorded_at",),
}
"""Timestamps that record an event that happened; the snapshot time is their maximum.
Planned and promised dates lie in the future and never count."""
