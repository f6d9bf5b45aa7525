"""Every table of the serving store, on one MetaData: API keys, scoring runs with their ranked
rows and the inputs monitoring reads, webhooks and their deliveries.

The tables are declared here once; their history is the Alembic migrations beside this module
(``serving/store/migrations``), which every store is upgraded with when it opens.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from serving.columns import (
    FORECAST_COLUMNS,
    STAGE_COLUMNS,
    STAGE_DAYS_IF_LATE_COLUMNS,
    TRANSLATED_REASON_COLUMNS,
)

METADATA = MetaData()

API_KEYS = Table(
    "api_keys",
    METADATA,
    Column("key_id", String(16), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

STORE_GENERATIONS = Table(
    "store_generations",
    METADATA,
    # One counter per kind of row that servers cache ("api_keys"), raised in the transaction
    # that changes such a row: another server sees the change with one tiny read.
    Column("name", String(32), primary_key=True),
    Column("generation", Integer, nullable=False),
)

SCORING_RUNS = Table(
    "scoring_runs",
    METADATA,
    Column("run_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_version", String(32), nullable=False),
    Column("model_run_id", String(64), nullable=True),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("data_source", Text, nullable=False, default=""),
    Column("n_open", Integer, nullable=False),
    Column("n_scored", Integer, nullable=False),
)

SCORED_ORDERS = Table(
    "scored_orders",
    METADATA,
    Column(
        "run_id",
        String(32),
        ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rank", Integer, primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("risk", Float, nullable=False),
    Column("top_stage", String(32), nullable=False),
    *(Column(c, Float, nullable=False) for c in STAGE_COLUMNS),
    Column("reasons", Text, nullable=False),
    # The reasons per language (JSON lists), NULL where they say what ``reasons`` says.
    *(Column(c, Text, nullable=True) for c in TRANSLATED_REASON_COLUMNS),
    Column("plant_id", String(200), nullable=True),
    Column("customer_id", String(200), nullable=True),
    Column("due_date", String(10), nullable=True),
    Column("days_to_due", Integer, nullable=True),
    # The delivery forecast (NULL for models without one and runs recorded before it).
    *(
        Column(c, String(10) if c == "predicted_delivery_date" else Float, nullable=True)
        for c in FORECAST_COLUMNS
        # Newer than ranked lists as Parquet (migration 0003): only the Parquet list has them.
        if c not in STAGE_DAYS_IF_LATE_COLUMNS
    ),
    # Who owns the top stage, in the run's language (NULL for runs recorded before owners).
    Column("owner", String(200), nullable=True),
    Index("ix_scored_orders_run_order", "run_id", "order_id"),
)


def _run_blob_table(name: str) -> Table:
    """A table of one Parquet blob per scoring run, deleted with its run."""
    return Table(
        name,
        METADATA,
        Column(
            "run_id",
            String(32),
            ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("n_orders", Integer, nullable=False),
        Column("frame", LargeBinary, nullable=False),
    )


RANKED_LISTS = _run_blob_table("ranked_lists")
"""A run's ranked list (since migration 0003): writing 100,000 rows one by one cost more than
scoring them. ``scored_orders`` holds the runs recorded before."""

SCORING_RUN_INPUTS = _run_blob_table("scoring_run_inputs")
"""What a run saw and said for monitoring (features, risk, forecast): written in the
transaction that records the run, deleted with it."""

WEBHOOKS = Table(
    "webhooks",
    METADATA,
    Column("webhook_id", String(16), primary_key=True),
    Column("url", Text, nullable=False),
    # Signing needs the secret itself: stored encrypted (serving.secretbox), "fernet:..."; rows
    # from before that hold it in clear until a store opens and encrypts them.
    Column("secret", Text, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("risk_step", Float, nullable=True),
    Column("plant_id", String(200), nullable=True),
    Column("customer_id", String(200), nullable=True),
    # Subscriptions (JSON lists, NULL: any): only orders of these owners, plants, customers.
    Column("owners", Text, nullable=True),
    Column("plants", Text, nullable=True),
    Column("customers", Text, nullable=True),
    Column("max_events_per_run", Integer, nullable=True),
    Column("lang", String(8), nullable=False, default="en"),
    Column("description", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, default="active"),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)

WEBHOOK_RUNS = Table(
    "webhook_runs",
    METADATA,
    # Scoring runs already turned into events. No foreign key: retention deletes old runs,
    # and a processed run must stay processed.
    Column("run_id", String(32), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Column("n_events", Integer, nullable=False),
)

DELIVERIES = Table(
    "webhook_deliveries",
    METADATA,
    Column("delivery_id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", String(16), ForeignKey("webhooks.webhook_id"), nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("order_id", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_hook", "webhook_id", "delivery_id"),
)


WEBHOOK_ORDER_STATE = Table(
    "webhook_order_state",
    METADATA,
    # What each receiver was last told of each order (its last event, or the digest it was
    # counted in): the next event is about what changed since. No foreign key to the runs:
    # retention deletes old runs, and what was said stays said.
    Column("webhook_id", String(16), ForeignKey("webhooks.webhook_id"), primary_key=True),
    Column("order_id", String(200), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("risk", Float, nullable=False),
    Column("top_stage", String(32), nullable=True),
    Column("predicted_days_late", Float, nullable=True),
    Column("predicted_delivery_date", String(10), nullable=True),
    Column("due_date", String(10), nullable=True),
    Column("reasons", Text, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

ACKNOWLEDGEMENTS = Table(
    "acknowledgements",
    METADATA,
    # A planner's "handled": kept when withdrawn or replaced (withdrawn_at set), so the history
    # of who handled what stays readable. At most one in force per order (serving.acks).
    Column("ack_id", String(16), primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("until", String(10), nullable=True),
    Column("until_risk_rises_by", Float, nullable=True),
    Column("risk", Float, nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("key_id", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("withdrawn_by", String(200), nullable=True),
    Index("ix_acknowledgements_order", "order_id", "withdrawn_at"),
)


def utc(value):
    """A datetime read back from the store, in UTC: SQLite hands back naive datetimes (they were
    stored in UTC), PostgreSQL aware ones. Anything else is returned as it is."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def utc_now(now: datetime | None = None) -> datetime:
    """``now`` (default: the clock) as an aware UTC datetime, the one form the store compares."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
