"""Alembic environment for the proxy's tables; runs only through `proxy.db.migrate.migrate_proxy(engine)`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from proxy.db.tables import PROXY_METADATA

VERSION_TABLE = "proxy_alembic_version"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    assert isinstance(connection, Connection), "proxy migrations run only through migrate_proxy(engine)"
    context.configure(connection=connection, target_metadata=PROXY_METADATA, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
