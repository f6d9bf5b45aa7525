"""One store: the scoring log's inputs beside the run they belong to (one run id, one
transaction), and the generation counter that lets API servers sharing a store cache key rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store of before migrations whose tables were all made by ``create_all`` may have them.
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "scoring_run_inputs" not in have:
        _inputs_table()
    if "store_generations" not in have:
        generations = op.create_table(
            "store_generations",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("generation", sa.Integer, nullable=False),
        )
        op.bulk_insert(generations, [{"name": "api_keys", "generation": 0}])


def _inputs_table() -> None:
    op.create_table(
        "scoring_run_inputs",
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
    op.drop_table("store_generations")
    op.drop_table("scoring_run_inputs")
