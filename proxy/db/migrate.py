"""Brings the proxy's own tables to the newest Alembic revision (its version table is separate from the ledger's)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["migrate_proxy"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate_proxy(engine: AsyncEngine) -> None:
    """Safe at every start; run after `ledger.migrate`, which creates the SQLite file's directory."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Replicas starting together must not both create the schema.
            await connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7262034502)")
        await connection.run_sync(_upgrade)
