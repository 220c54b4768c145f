"""Alembic environment: Segue always hands in an open connection (see segue.store.engine)."""

from alembic import context

from segue.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
