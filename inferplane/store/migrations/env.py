"""Alembic environment: runs migrations on the connection the store hands over.

The store configures Alembic in code (``inferplane.store.migrate``); there is no
alembic.ini and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from inferplane.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
