"""Alembic environment for the ledger. Runs only programmatically, on a connection handed in by migrate().

The connection arrives in `config.attributes["connection"]` (a sync Connection from `run_sync`); there is
no URL and no offline mode, so the schema is only ever changed through `ledger.migrate(engine)`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ledger.tables import ledger_metadata

VERSION_TABLE = "ledger_alembic_version"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    assert isinstance(connection, Connection), "ledger migrations run only through ledger.migrate(engine)"
    context.configure(
        connection=connection,
        target_metadata=ledger_metadata,
        version_table=VERSION_TABLE,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
