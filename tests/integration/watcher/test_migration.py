"""Migration p0002 creates exactly the `chain_watch_cursors` table that proxy/db/tables.py declares."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.tables import PROXY_METADATA


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return [d for d in compare_metadata(context, PROXY_METADATA) if "chain_watch_cursors" in repr(d)]


async def test_migration_matches_the_table(watcher_engine: AsyncEngine) -> None:
    async with watcher_engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
