"""metric history index: a metric's history read in order from the index alone

The index on (run_id, key, step) made a history read sort its rows and visit the table for
each one; (run_id, key, step, timestamp, id, value) holds the read's order and every column
it returns (a 100,000-point history: about 3 times faster on SQLite).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD = ("run_id", "key", "step")
_NEW = ("run_id", "key", "step", "timestamp", "id", "value")


def upgrade() -> None:
    op.create_index(op.f("ix_metrics_" + "_".join(_NEW)), "metrics", list(_NEW))
    op.drop_index(op.f("ix_metrics_" + "_".join(_OLD)), table_name="metrics")


def downgrade() -> None:
    op.create_index(op.f("ix_metrics_" + "_".join(_OLD)), "metrics", list(_OLD))
    op.drop_index(op.f("ix_metrics_" + "_".join(_NEW)), table_name="metrics")
