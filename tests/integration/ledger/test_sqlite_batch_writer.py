"""SQLite's group commit (ledger/sqlite_writer.py): many writes share a transaction, none is lost or leaks.

Goal (issue 10): concurrent ledger writes of one process share transactions (savepoints) yet stay exact: a
refused write rolls back alone, a failing `also=` takes only its own capture with it, an answer comes only
after COMMIT, and a write lock held by another process is waited for, not failed on.
Method: the real ledger on a SQLite file; concurrency from asyncio tasks; statements counted with a cursor
hook on every engine (the writer has its own connection); the other process's lock is a plain `sqlite3`
connection holding BEGIN IMMEDIATE.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from ledger import HoldState, InsufficientFunds, Ledger, check_ledger, migrate
from tests.fixtures.ledger import open_demo_accounts
from tests.integration.ledger.test_ledger import ALICE, PAYABLE, deposit

CREDIT_NANO_USD = 1_000
HOLD_NANO_USD = 100
CONCURRENT_HOLDS = 20


@pytest.fixture
async def sqlite_ledger(sqlite_url: str) -> AsyncIterator[Ledger]:
    engine = create_async_engine(sqlite_url)
    await migrate(engine)
    ledger = Ledger(engine)
    await open_demo_accounts(ledger)
    await deposit(ledger, CREDIT_NANO_USD)
    yield ledger
    await engine.dispose()


def _count_statements(prefix: str) -> tuple[list[str], Callable[..., None]]:
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.upper().startswith(prefix):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    return seen, count


async def _hold(ledger: Ledger, index: int) -> HoldState | str:
    try:
        hold = await ledger.hold(
            idempotency_key=f"h{index}",
            debit_account=ALICE,
            credit_account=PAYABLE,
            amount=HOLD_NANO_USD,
            timeout_s=60,
        )
    except InsufficientFunds:
        return "refused"
    return hold.state


async def test_concurrent_holds_share_transactions_and_never_overspend(sqlite_ledger: Ledger) -> None:
    savepoints, hook = _count_statements("SAVEPOINT")
    try:
        outcomes = await asyncio.gather(*(_hold(sqlite_ledger, i) for i in range(CONCURRENT_HOLDS)))
    finally:
        event.remove(Engine, "before_cursor_execute", hook)
    assert outcomes.count(HoldState.PENDING) == CREDIT_NANO_USD // HOLD_NANO_USD
    assert outcomes.count("refused") == CONCURRENT_HOLDS - CREDIT_NANO_USD // HOLD_NANO_USD
    assert savepoints, "the holds were batched: each ran in a savepoint of a shared transaction"
    balance = await sqlite_ledger.balance(ALICE)
    assert (balance.pending, balance.available) == (CREDIT_NANO_USD, 0)
    assert await check_ledger(sqlite_ledger.engine) == []


async def test_a_failing_also_rolls_back_only_its_own_capture(sqlite_ledger: Ledger) -> None:
    first = await sqlite_ledger.hold(
        idempotency_key="a", debit_account=ALICE, credit_account=PAYABLE, amount=HOLD_NANO_USD, timeout_s=60
    )
    second = await sqlite_ledger.hold(
        idempotency_key="b", debit_account=ALICE, credit_account=PAYABLE, amount=HOLD_NANO_USD, timeout_s=60
    )

    async def fails(_connection: AsyncConnection) -> None:
        raise RuntimeError("the caller's own write failed")

    captured, refused = await asyncio.gather(
        sqlite_ledger.capture(first.id, 40, idempotency_key="ca"),
        sqlite_ledger.capture(second.id, 60, idempotency_key="cb", also=fails),
        return_exceptions=True,
    )
    assert not isinstance(captured, BaseException)
    assert captured.state is HoldState.CAPTURED
    assert isinstance(refused, RuntimeError)
    assert (await sqlite_ledger.get_hold(second.id)).state is HoldState.PENDING
    assert (await sqlite_ledger.balance(PAYABLE)).posted == 40
    assert await check_ledger(sqlite_ledger.engine) == []


async def test_a_lock_held_by_another_process_is_waited_for(sqlite_ledger: Ledger) -> None:
    database = sqlite_ledger.engine.url.database
    assert database is not None
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        hold = asyncio.create_task(_hold(sqlite_ledger, 0))
        await asyncio.sleep(0.2)
        assert not hold.done(), "the write cannot commit while another connection holds the write lock"
        other.execute("COMMIT")
        assert await hold == HoldState.PENDING
    finally:
        other.close()
    assert (await sqlite_ledger.balance(ALICE)).pending == HOLD_NANO_USD


def _holds_in_the_database_file(sqlite_url: str) -> int:
    """Holds in the main database file alone: `immutable=1` makes SQLite ignore the write-ahead log."""
    path = sqlite_url.split(":///", 1)[1]
    reader = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        known = reader.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_holds'").fetchone()
        return 0 if known is None else int(reader.execute("SELECT count(*) FROM ledger_holds").fetchone()[0])
    finally:
        reader.close()


async def test_commits_leave_the_checkpoint_to_the_writer_which_runs_it_every_few_batches(
    sqlite_ledger: Ledger, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COMMIT runs on the event loop and does not checkpoint (that fsyncs); the writer checkpoints on its
    thread every CHECKPOINT_EVERY_BATCHES batches, which copies the log into the database file."""
    before = _holds_in_the_database_file(sqlite_url)
    monkeypatch.setattr("ledger.sqlite_writer.CHECKPOINT_EVERY_BATCHES", 10**9)
    # One batch per write (each awaited alone), committed to the log only.
    assert await _hold(sqlite_ledger, 0) is HoldState.PENDING
    assert await _hold(sqlite_ledger, 1) is HoldState.PENDING
    assert _holds_in_the_database_file(sqlite_url) == before

    monkeypatch.setattr("ledger.sqlite_writer.CHECKPOINT_EVERY_BATCHES", 1)
    assert await _hold(sqlite_ledger, 2) is HoldState.PENDING
    # Its caller was answered before the checkpoint ran; the next write waits for that checkpoint (one
    # writer task, one batch after another), so once it is answered the first three are in the file.
    assert await _hold(sqlite_ledger, 3) is HoldState.PENDING
    assert _holds_in_the_database_file(sqlite_url) >= before + 3
    assert len(await sqlite_ledger.open_holds(ALICE)) == 4
    assert await check_ledger(sqlite_ledger.engine) == []
