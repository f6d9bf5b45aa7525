"""Owners and acknowledgements: the ``owner`` column of ``scored_orders`` (read for runs recorded
before ranked lists were Parquet; NULL there), planners' acknowledgements (and their
generation counter, so servers sharing a store cache them), webhook subscriptions by owners,
plants and customers with a cap of events per run, and what each receiver was last told of each
order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_WEBHOOK_COLUMNS = {
    "owners": sa.Text,
    "plants": sa.Text,
    "customers": sa.Text,
    "max_events_per_run": sa.Integer,
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    have = set(inspector.get_table_names())
    # A store of before migrations whose tables were made by ``create_all`` may have these.
    if "owner" not in {c["name"] for c in inspector.get_columns("scored_orders")}:
        op.add_column("scored_orders", sa.Column("owner", sa.String(200), nullable=True))
    present = {c["name"] for c in inspector.get_columns("webhooks")}
    for name, kind in _WEBHOOK_COLUMNS.items():
        if name not in present:
            op.add_column("webhooks", sa.Column(name, kind(), nullable=True))
    if "acknowledgements" not in have:
        _acknowledgements()
    if "webhook_order_state" not in have:
        _order_state()
    op.execute(
        sa.text(
            "INSERT INTO store_generations (name, generation) SELECT 'acknowledgements', 0 "
            "WHERE NOT EXISTS (SELECT 1 FROM store_generations WHERE name = 'acknowledgements')"
        )
    )


def _acknowledgements() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "acknowledgements",
        sa.Column("ack_id", sa.String(16), primary_key=True),
        sa.Column("order_id", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("until", sa.String(10), nullable=True),
        sa.Column("until_risk_rises_by", sa.Float, nullable=True),
        sa.Column("risk", sa.Float, nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("withdrawn_at", when, nullable=True),
        sa.Column("withdrawn_by", sa.String(200), nullable=True),
        sa.Index("ix_acknowledgements_order", "order_id", "withdrawn_at"),
    )


def _order_state() -> None:
    op.create_table(
        "webhook_order_state",
        sa.Column(
            "webhook_id", sa.String(16), sa.ForeignKey("webhooks.webhook_id"), primary_key=True
        ),
        sa.Column("order_id", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("risk", sa.Float, nullable=False),
        sa.Column("top_stage", sa.String(32), nullable=True),
        sa.Column("predicted_days_late", sa.Float, nullable=True),
        sa.Column("predicted_delivery_date", sa.String(10), nullable=True),
        sa.Column("due_date", sa.String(10), nullable=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM store_generations WHERE name = 'acknowledgements'"))
    op.drop_table("webhook_order_state")
    op.drop_table("acknowledgements")
    for name in _WEBHOOK_COLUMNS:
        op.drop_column("webhooks", name)
    op.drop_column("scored_orders", "owner")
