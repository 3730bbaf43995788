"""Concurrent holds against one small credit account never overdraw it and never deadlock.

Many asyncio tasks (each on its own pooled connection) race for a 100-unit account with 10-unit holds: exactly
ten must succeed. On PostgreSQL two extra OS processes join the race through their own engines.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from ledger import IdempotencyConflict, InsufficientFunds, Ledger, check_ledger
from tests.fixtures.ledger import open_demo_accounts

ALICE = "credit:account:alice"
PAYABLE = "provider_payable:openai"
CREDIT_NANO_USD = 100
HOLD_NANO_USD = 10
TASKS = 30
RACE_TIMEOUT_S = 60.0

WORKER = """
import asyncio, sys
from ledger import InsufficientFunds, Ledger, create_ledger_engine

async def main(url: str, tag: str, count: int) -> None:
    engine = create_ledger_engine(url)
    ledger = Ledger(engine)
    won = 0
    async def one(i: int) -> None:
        nonlocal won
        try:
            await ledger.hold(idempotency_key=f"{tag}-{i}", debit_account="credit:account:alice",
                              credit_account="provider_payable:openai", amount=10, timeout_s=600)
            won += 1
        except InsufficientFunds:
            pass
    await asyncio.gather(*(one(i) for i in range(count)))
    await engine.dispose()
    print(won)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _fund(ledger: Ledger) -> None:
    await open_demo_accounts(ledger)
    await ledger.post(
        idempotency_key="fund",
        code="deposit",
        postings=[("equity:external", CREDIT_NANO_USD), (ALICE, -CREDIT_NANO_USD)],
    )


async def _try_hold(ledger: Ledger, key: str) -> bool:
    try:
        await ledger.hold(
            idempotency_key=key,
            debit_account=ALICE,
            credit_account=PAYABLE,
            amount=HOLD_NANO_USD,
            timeout_s=600,
        )
    except InsufficientFunds:
        return False
    return True


async def test_concurrent_holds_never_overdraw(ledger: Ledger) -> None:
    await _fund(ledger)
    async with asyncio.timeout(RACE_TIMEOUT_S):
        results = await asyncio.gather(*(_try_hold(ledger, f"h{i}") for i in range(TASKS)))
    assert sum(results) == CREDIT_NANO_USD // HOLD_NANO_USD
    balance = await ledger.balance(ALICE)
    assert (balance.posted, balance.pending, balance.available) == (CREDIT_NANO_USD, CREDIT_NANO_USD, 0)
    assert await check_ledger(ledger.engine) == []


async def test_concurrent_replays_of_one_key_book_once(ledger: Ledger) -> None:
    await _fund(ledger)

    async def withdraw(amount: int) -> int | None:
        try:
            tx = await ledger.post(
                idempotency_key="same",
                code="withdraw",
                postings=[(ALICE, amount), ("equity:external", -amount)],
            )
        except IdempotencyConflict:
            return None
        return tx.id

    async with asyncio.timeout(RACE_TIMEOUT_S):
        ids = await asyncio.gather(*(withdraw(7) for _ in range(10)))
    assert len(set(ids)) == 1
    assert (await ledger.balance(ALICE)).posted == CREDIT_NANO_USD - 7


@pytest.mark.slow
async def test_processes_and_tasks_race_without_overdraw(ledger: Ledger, database_url: str) -> None:
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("the multi-process race runs on PostgreSQL (SQLite serializes writers by design)")
    await _fund(ledger)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, database_url, f"p{n}", "15", stdout=asyncio.subprocess.PIPE
        )
        for n in range(2)
    ]
    async with asyncio.timeout(RACE_TIMEOUT_S):
        local = await asyncio.gather(*(_try_hold(ledger, f"t{i}") for i in range(15)))
        outputs = [await process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes)
    remote = sum(int(stdout.decode().strip()) for stdout, _ in outputs)
    assert sum(local) + remote == CREDIT_NANO_USD // HOLD_NANO_USD
    assert (await ledger.balance(ALICE)).available == 0
    assert await check_ledger(ledger.engine) == []
