"""Hold groups under concurrency: many groups over overlapping accounts, listed in every order, never
deadlock and never overspend; a group is resolved exactly once however many callers race for it; and
concurrent replays of one resolution key all get its result.

Method: asyncio tasks, each on its own pooled connection (separate PostgreSQL backends, so the row locks
really contend; on SQLite BEGIN IMMEDIATE serializes them and the same assertions hold). Each group lists
its accounts in a shuffled order: were the locks taken in listing order rather than ascending id order,
two groups naming the same two accounts in opposite orders would deadlock. Seeds are fixed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable

from ledger import (
    AccountFlags,
    AccountType,
    HoldAlreadyResolved,
    HoldGroup,
    HoldState,
    InsufficientFunds,
    Ledger,
    check_ledger,
)

UNIT = "nano_usd"
PAYABLE = "provider_payable:race"
SOURCE = "equity:external"
FUNDED = {f"credit:account:{i}": 100 for i in range(4)} | {f"budget:unit:{i}": 150 for i in range(2)}
LEG_NANO_USD = 10
GROUPS = 60
RACE_TIMEOUT_S = 120.0


async def open_accounts(ledger: Ledger) -> None:
    await ledger.ensure_account(SOURCE, type=AccountType.EQUITY, unit=UNIT)
    await ledger.ensure_account(PAYABLE, type=AccountType.LIABILITY, unit=UNIT)
    for name, amount in FUNDED.items():
        flags = AccountFlags.MUST_NOT_GO_NEGATIVE
        await ledger.ensure_account(name, type=AccountType.LIABILITY, unit=UNIT, flags=flags)
        await ledger.post(
            idempotency_key=f"fund:{name}", code="deposit", postings=[(SOURCE, amount), (name, -amount)]
        )


def shuffled_legs(seed: int) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    debits = rng.sample(sorted(FUNDED), rng.randint(2, 4))
    return [(name, PAYABLE, LEG_NANO_USD) for name in debits]


async def try_group(ledger: Ledger, seed: int) -> HoldGroup | None:
    try:
        return await ledger.hold_group(idempotency_key=f"g{seed}", holds=shuffled_legs(seed), timeout_s=600)
    except InsufficientFunds:
        return None


async def race(*calls: Awaitable[object]) -> list[object]:
    async with asyncio.timeout(RACE_TIMEOUT_S):
        return await asyncio.gather(*calls, return_exceptions=True)


async def test_overlapping_groups_neither_deadlock_nor_overspend(ledger: Ledger) -> None:
    await open_accounts(ledger)
    outcomes = await race(*(try_group(ledger, seed) for seed in range(GROUPS)))
    unexpected = [o for o in outcomes if isinstance(o, BaseException)]
    assert unexpected == []
    placed = [o for o in outcomes if isinstance(o, HoldGroup)]
    held: Counter[str] = Counter()
    for group in placed:
        for hold in group.holds:
            held[hold.debit_account] += hold.amount
    assert placed, "some groups fit"
    assert len(placed) < GROUPS, "the accounts are too small for every group: the race decides"
    for name, funded in FUNDED.items():
        balance = await ledger.balance(name)
        assert balance.pending == held[name] <= funded
        assert balance.available >= 0
    assert (await ledger.balance(PAYABLE)).credits_pending == sum(held.values())
    assert await check_ledger(ledger.engine) == []
    # Resolve every group while new groups race for the released funds.
    resolutions = [
        ledger.capture_group(g.id, [LEG_NANO_USD // 2] * len(g.holds), idempotency_key=f"c{g.id}")
        if g.id % 2
        else ledger.void_group(g.id, idempotency_key=f"v{g.id}")
        for g in placed
    ]
    more = [try_group(ledger, seed) for seed in range(GROUPS, 2 * GROUPS)]
    outcomes = await race(*resolutions, *more)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    for name in FUNDED:
        assert (await ledger.balance(name)).available >= 0
    assert await check_ledger(ledger.engine) == []


async def test_a_group_is_resolved_once_whoever_races(ledger: Ledger) -> None:
    await open_accounts(ledger)
    group = await ledger.hold_group(idempotency_key="g", holds=shuffled_legs(1), timeout_s=600)
    amounts = [LEG_NANO_USD] * len(group.holds)
    outcomes = await race(
        *(ledger.capture_group(group.id, amounts, idempotency_key=f"c{i}") for i in range(4)),
        *(ledger.void_group(group.id, idempotency_key=f"v{i}") for i in range(4)),
        *(ledger.capture_group(group.id, amounts, idempotency_key="same") for _ in range(4)),
    )
    won = [o for o in outcomes if isinstance(o, HoldGroup)]
    lost = [o for o in outcomes if isinstance(o, HoldAlreadyResolved)]
    assert len(won) + len(lost) == len(outcomes), outcomes
    assert len({o.state for o in won}) == 1
    assert len(won) in (1, 4), "one caller won, or the four callers of one key all got its result"
    final = await ledger.get_hold_group(group.id)
    assert all(o == final for o in won)
    assert final.state is not HoldState.PENDING
    assert await check_ledger(ledger.engine) == []


async def test_concurrent_replays_of_one_resolution_key_all_get_its_result(ledger: Ledger) -> None:
    await open_accounts(ledger)
    debit = sorted(FUNDED)[0]
    hold = await ledger.hold(
        idempotency_key="h", debit_account=debit, credit_account=PAYABLE, amount=30, timeout_s=600
    )
    group = await ledger.hold_group(idempotency_key="g", holds=shuffled_legs(2), timeout_s=600)
    outcomes = await race(
        *(ledger.capture(hold.id, 20, idempotency_key="c") for _ in range(8)),
        *(ledger.void_group(group.id, idempotency_key="v") for _ in range(8)),
    )
    assert [type(o).__name__ for o in outcomes] == ["Hold"] * 8 + ["HoldGroup"] * 8
    assert all(o == outcomes[0] for o in outcomes[:8])
    assert all(o == outcomes[8] for o in outcomes[8:])
    assert (await ledger.balance(debit)).posted == FUNDED[debit] - 20
    assert await check_ledger(ledger.engine) == []
