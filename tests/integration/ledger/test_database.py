"""What the database itself guarantees, independent of the Python code: the migrations build exactly the
schema the models describe, entries and transactions are append-only, and (PostgreSQL) an unbalanced
transaction cannot commit. Raw SQL is used on purpose, to bypass the Ledger class.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ledger import Ledger, migrate
from ledger.tables import ledger_metadata
from tests.fixtures.ledger import open_demo_accounts


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"version_table": "ledger_alembic_version"})
    return list(compare_metadata(context, ledger_metadata))


async def test_migrations_match_models_and_rerun_cleanly(ledger: Ledger) -> None:
    await migrate(ledger.engine)
    async with ledger.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        version = (await conn.execute(sa.text("SELECT version_num FROM ledger_alembic_version"))).scalar_one()
    assert version == "0002_hold_groups"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transactions SET code = 'changed'",
        "DELETE FROM ledger_transactions",
    ],
)
async def test_database_refuses_to_change_the_past(ledger: Ledger, statement: str) -> None:
    await open_demo_accounts(ledger)
    await ledger.post(
        idempotency_key="d", code="deposit", postings=[("equity:external", 7), ("credit:account:alice", -7)]
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with ledger.engine.begin() as conn:
            await conn.execute(sa.text(statement))
    async with ledger.engine.connect() as conn:
        amounts = (
            (await conn.execute(sa.text("SELECT amount FROM ledger_entries ORDER BY id"))).scalars().all()
        )
    assert list(amounts) == [7, -7]


async def test_postgresql_refuses_to_commit_an_unbalanced_transaction(ledger: Ledger) -> None:
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("the deferred balance trigger is PostgreSQL-only; SQLite relies on ledger/postings.py")
    await open_demo_accounts(ledger)
    alice = (await ledger.account("credit:account:alice")).id
    with pytest.raises(DBAPIError, match="does not sum to zero"):
        await _insert_one_sided_transaction(ledger, alice)
    assert await ledger.transactions() == []


async def _insert_one_sided_transaction(ledger: Ledger, account_id: int) -> None:
    async with ledger.engine.begin() as conn:
        tx_id = (
            await conn.execute(
                sa.text(
                    "INSERT INTO ledger_transactions (idempotency_key, body_hash, code, metadata_json,"
                    " created_at_unix_ms) VALUES ('raw', 'x', 'raw', '{}', 0) RETURNING id"
                )
            )
        ).scalar_one()
        await conn.execute(
            sa.text("INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (:t, :a, 5)"),
            {"t": tx_id, "a": account_id},
        )
