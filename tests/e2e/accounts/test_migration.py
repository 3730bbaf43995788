"""Migration p0003 builds exactly the account tables that proxy/db/tables.py describes."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from ledger import create_ledger_engine, migrate
from proxy.db.migrate import migrate_proxy
from proxy.db.tables import PROXY_METADATA

ACCOUNT_TABLES = {"account_challenges", "account_api_keys", "account_withdrawals"}


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_object": _only_accounts})
    return list(compare_metadata(context, PROXY_METADATA))


def _only_accounts(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
    return table in ACCOUNT_TABLES


async def test_account_tables_match_the_migration(database_url: str) -> None:
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
