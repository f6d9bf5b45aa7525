"""Ranked lists as one Parquet blob per run: recording 100,000 scored orders row by row took
longer than scoring them. Runs recorded before keep their rows in ``scored_orders`` and are read
from there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ranked_lists",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("scoring_runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("n_orders", sa.Integer, nullable=False),
        sa.Column("frame", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ranked_lists")
