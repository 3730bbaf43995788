"""PostgreSQL drops the ledger's pooled connections (a restart, a failover, an idle timeout): the pool does
not ping before lending a connection, so the next ledger write meets a dead one and must run again on a
fresh connection, exactly once (ledger/store.py, Ledger._write_in_one_greenlet)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from ledger import HoldState, Ledger, check_ledger, create_ledger_engine, migrate
from tests.fixtures.db import PG_DSN, PgDatabases
from tests.fixtures.ledger import open_demo_accounts

pytestmark = pytest.mark.postgres

ALICE = "credit:account:alice"
EXTERNAL = "equity:external"
PAYABLE = "provider_payable:openai"


@pytest.fixture
async def pg_ledger(pg_databases: PgDatabases | None) -> AsyncIterator[tuple[Ledger, str]]:
    if pg_databases is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}")
    url = await pg_databases.create()
    engine = create_ledger_engine(url)
    try:
        await migrate(engine)
        yield Ledger(engine), str(make_url(url).database)
    finally:
        await engine.dispose()


async def drop_connections(database: str) -> int:
    """What a server restart does to a client's pool: every backend of `database` is terminated."""
    admin = await asyncpg.connect(PG_DSN)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    return int(dropped)


async def test_writes_after_the_server_dropped_the_pool_run_once_on_a_fresh_connection(
    pg_ledger: tuple[Ledger, str],
) -> None:
    ledger, database = pg_ledger
    await open_demo_accounts(ledger)
    deposit = [(EXTERNAL, 1_000), (ALICE, -1_000)]
    await ledger.post(idempotency_key="deposit", code="deposit", postings=deposit)
    hold = await ledger.hold(
        idempotency_key="h1", debit_account=ALICE, credit_account=PAYABLE, amount=600, timeout_s=60
    )
    assert await drop_connections(database) >= 1

    captured = await ledger.capture(hold.id, 250, idempotency_key="c1")

    assert captured.state is HoldState.CAPTURED
    assert captured.captured_amount == 250
    alice = await ledger.balance(ALICE)
    assert (alice.posted, alice.pending, alice.available) == (750, 0, 750)
    assert (await ledger.balance(PAYABLE)).posted == 250

    # A hold right after another drop: one hold, the amount reserved once.
    assert await drop_connections(database) >= 1
    second = await ledger.hold(
        idempotency_key="h2", debit_account=ALICE, credit_account=PAYABLE, amount=700, timeout_s=60
    )
    assert (await ledger.balance(ALICE)).available == 50
    assert [h.id for h in await ledger.open_holds(ALICE)] == [second.id]
    assert await check_ledger(ledger.engine) == []
