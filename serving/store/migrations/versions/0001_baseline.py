"""The serving store as version 0.1 made it before migrations: API keys, scoring runs and their
ranked rows, webhooks and deliveries.

A store made before Alembic (no ``alembic_version`` table) already has some of these tables:
they are kept as they are, only the missing ones created and the columns that version added
later (reasons per language, the delivery forecast) added.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the stage and forecast columns of 0.1: a migration must not change when the
# code's declarations do.
_PROCESS_STAGES = ("confirmation", "planning", "procurement", "production", "quality",
                   "warehouse", "shipping")  # fmt: skip
_STAGES = ("order", *_PROCESS_STAGES)
_FORECAST_FLOATS = ("predicted_days_late", "days_late_p10", "days_late_p90", "days_late_p025",
                    "days_late_p975", "past_due_days",
                    *(f"stage_days_{s}" for s in _PROCESS_STAGES))  # fmt: skip
_LATER_COLUMNS: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "reasons_en": sa.Text,
    "reasons_zh": sa.Text,
    "predicted_delivery_date": lambda: sa.String(10),
    **dict.fromkeys(_FORECAST_FLOATS, sa.Float),
}


def _tables() -> dict[str, tuple]:
    when = sa.DateTime(timezone=True)
    return {
        "api_keys": (
            sa.Column("key_id", sa.String(16), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("secret_sha256", sa.String(64), nullable=False),
            sa.Column("created_at", when, nullable=False),
            sa.Column("revoked_at", when, nullable=True),
        ),
        "scoring_runs": (
            sa.Column("run_id", sa.String(32), primary_key=True),
            sa.Column("created_at", when, nullable=False, index=True),
            sa.Column("model_version", sa.String(32), nullable=False),
            sa.Column("model_run_id", sa.String(64), nullable=True),
            sa.Column("as_of", when, nullable=False),
            sa.Column("data_fingerprint", sa.String(64), nullable=False),
            sa.Column("data_source", sa.Text, nullable=False),
            sa.Column("n_open", sa.Integer, nullable=False),
            sa.Column("n_scored", sa.Integer, nullable=False),
        ),
        "scored_orders": (
            sa.Column(
                "run_id",
                sa.String(32),
                sa.ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("rank", sa.Integer, primary_key=True),
            sa.Column("order_id", sa.String(200), nullable=False),
            sa.Column("risk", sa.Float, nullable=False),
            sa.Column("top_stage", sa.String(32), nullable=False),
            *(sa.Column(f"stage_{s}", sa.Float, nullable=False) for s in _STAGES),
            sa.Column("reasons", sa.Text, nullable=False),
            sa.Column("reasons_en", sa.Text, nullable=True),
            sa.Column("reasons_zh", sa.Text, nullable=True),
            sa.Column("plant_id", sa.String(200), nullable=True),
            sa.Column("customer_id", sa.String(200), nullable=True),
            sa.Column("due_date", sa.String(10), nullable=True),
            sa.Column("days_to_due", sa.Integer, nullable=True),
            *(sa.Column(c, sa.Float, nullable=True) for c in _FORECAST_FLOATS[:5]),
            sa.Column("predicted_delivery_date", sa.String(10), nullable=True),
            *(sa.Column(c, sa.Float, nullable=True) for c in _FORECAST_FLOATS[5:]),
            sa.Index("ix_scored_orders_run_order", "run_id", "order_id"),
        ),
        "webhooks": (
            sa.Column("webhook_id", sa.String(16), primary_key=True),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("secret", sa.Text, nullable=False),
            sa.Column("threshold", sa.Float, nullable=False),
            sa.Column("risk_step", sa.Float, nullable=True),
            sa.Column("plant_id", sa.String(200), nullable=True),
            sa.Column("customer_id", sa.String(200), nullable=True),
            sa.Column("lang", sa.String(8), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("consecutive_failures", sa.Integer, nullable=False),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("last_success_at", when, nullable=True),
            sa.Column("failing_since", when, nullable=True),
            sa.Column("created_at", when, nullable=False),
            sa.Column("deleted_at", when, nullable=True),
        ),
        "webhook_runs": (
            sa.Column("run_id", sa.String(32), primary_key=True),
            sa.Column("processed_at", when, nullable=False),
            sa.Column("n_events", sa.Integer, nullable=False),
        ),
        "webhook_deliveries": (
            sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column(
                "webhook_id",
                sa.String(16),
                sa.ForeignKey("webhooks.webhook_id"),
                nullable=False,
            ),
            sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
            sa.Column("event", sa.String(32), nullable=False),
            sa.Column("run_id", sa.String(32), nullable=False),
            sa.Column("order_id", sa.String(200), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("created_at", when, nullable=False),
            sa.Column("next_attempt_at", when, nullable=False),
            sa.Column("lease_until", when, nullable=True),
            sa.Column("last_attempt_at", when, nullable=True),
            sa.Column("last_status_code", sa.Integer, nullable=True),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("delivered_at", when, nullable=True),
            sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
            sa.Index("ix_webhook_deliveries_hook", "webhook_id", "delivery_id"),
        ),
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    have = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in have:
            op.create_table(name, *columns)
    if "scored_orders" in have:  # a store from before migrations: the columns added since
        present = {c["name"] for c in inspector.get_columns("scored_orders")}
        for column, kind in _LATER_COLUMNS.items():
            if column not in present:
                op.add_column("scored_orders", sa.Column(column, kind(), nullable=True))


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
