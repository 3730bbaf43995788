"""The proxy's Alembic migrations build exactly the tables proxy/db/tables.py declares (every one of them).

Method: migrate a fresh database (SQLite and PostgreSQL), then let Alembic's autogenerate compare the live
schema with PROXY_METADATA, looking only at the proxy's own tables (the ledger's have their own check).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from ledger import create_ledger_engine, migrate
from proxy.db.migrate import migrate_proxy
from proxy.db.tables import PROXY_METADATA

PROXY_TABLES = frozenset(PROXY_METADATA.tables)


def _only_proxy_tables(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
    return table in PROXY_TABLES


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_object": _only_proxy_tables})
    return list(compare_metadata(context, PROXY_METADATA))


async def test_proxy_tables_match_the_migrations(database_url: str) -> None:
    assert {"x402_settlements", "usage_events", "chain_watch_cursors", "account_api_keys"} <= PROXY_TABLES
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
