"""tags of any length on PostgreSQL: the tag value index by hash there

A btree entry on PostgreSQL holds at most about 2,700 bytes, so the (key, value) btree of
tags refused every longer tag value (a 500 for a 6,000-character tag, or a model's record
kept as a tag). On PostgreSQL it becomes a btree on key (filters and listings by key) and a
hash index on value, which holds values of any length and answers the equality filters on
tags (``tags.team = 'fraud'``). SQLite has no such limit and keeps its index.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.create_index(op.f("ix_tags_key"), "tags", ["key"])
    op.create_index(op.f("ix_tags_value_hash"), "tags", ["value"], postgresql_using="hash")
    op.drop_index(op.f("ix_tags_key_value"), table_name="tags")


def downgrade() -> None:
    if not _postgresql():
        return
    op.create_index(op.f("ix_tags_key_value"), "tags", ["key", "value"])
    op.drop_index(op.f("ix_tags_value_hash"), table_name="tags")
    op.drop_index(op.f("ix_tags_key"), table_name="tags")
