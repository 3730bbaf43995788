"""Claims of one payer never reserve more than its on-chain balance, across processes sharing the database.

Method: two engines on one database stand for two router processes (each has its own connection pool);
twelve claims of one payer race through them, six each, against a balance that covers exactly three. The
chain is not needed: the balance is what verification read, passed in as it would be. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.payments.intents import SettlementIntent, SettlementIntents, SettlementStatus
from tests.integration.proxy.chain.watcher.conftest import migrated_engine
from x402.errors import InsufficientFunds
from x402.verify import PayerBalance

NETWORK = "eip155:31337"
ASSET = "0x" + "cd" * 20
PAYER = "0x" + "ab" * 20
OTHER_PAYER = "0x" + "ef" * 20
VALUE_ATOMIC = 2_500
BALANCE_BLOCK = 100


@pytest.fixture
async def two_processes(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with migrated_engine(database_url) as first, migrated_engine(database_url) as second:
        yield first, second


async def _claim(
    intents: SettlementIntents, *, balance_atomic: int, payer: str = PAYER, nonce: str | None = None
) -> SettlementIntent | None:
    return await intents.claim(
        network=NETWORK,
        asset=ASSET,
        payer=payer,
        authorization_nonce=nonce or "0x" + secrets.token_hex(32),
        value_atomic=VALUE_ATOMIC,
        valid_before_unix_s=2_000_000_000,
        verified_payment_json="{}",
        request_id=None,
        payer_balance=PayerBalance(balance_atomic=balance_atomic, block_number=BALANCE_BLOCK),
    )


async def test_concurrent_claims_across_processes_reserve_at_most_the_balance(
    two_processes: tuple[AsyncEngine, AsyncEngine],
) -> None:
    processes = [SettlementIntents(engine) for engine in two_processes]

    async def claim_or_refusal(intents: SettlementIntents) -> str:
        try:
            intent = await _claim(intents, balance_atomic=3 * VALUE_ATOMIC)
        except InsufficientFunds:
            return "insufficient_funds"
        assert intent is not None
        return intent.status.value

    outcomes = await asyncio.gather(*(claim_or_refusal(processes[i % 2]) for i in range(12)))
    assert sorted(outcomes) == ["claimed"] * 3 + ["insufficient_funds"] * 9
    # Another payer's reservation is its own.
    assert await _claim(processes[0], balance_atomic=VALUE_ATOMIC, payer=OTHER_PAYER) is not None


async def test_settled_intents_count_only_until_the_balance_shows_them(
    two_processes: tuple[AsyncEngine, AsyncEngine],
) -> None:
    intents = SettlementIntents(two_processes[0])
    first = await _claim(intents, balance_atomic=VALUE_ATOMIC)
    assert first is not None
    with pytest.raises(InsufficientFunds):
        await _claim(intents, balance_atomic=VALUE_ATOMIC)
    # Mined after the block the balance was read at: the balance still holds those tokens, so it counts.
    await intents.record_signed(first.id, tx_hash="0x" + "11" * 32, raw_tx="0x00", tx_nonce=0, from_block=1)
    await intents.record_mined(
        first.id, tx_hash="0x" + "11" * 32, block_number=BALANCE_BLOCK + 1, transfer_log_index=0
    )
    with pytest.raises(InsufficientFunds):
        await _claim(intents, balance_atomic=VALUE_ATOMIC)
    # A balance read at or after its block has already paid it: only the new authorization counts.
    later = await intents.claim(
        network=NETWORK,
        asset=ASSET,
        payer=PAYER,
        authorization_nonce="0x" + secrets.token_hex(32),
        value_atomic=VALUE_ATOMIC,
        valid_before_unix_s=2_000_000_000,
        verified_payment_json="{}",
        request_id=None,
        payer_balance=PayerBalance(balance_atomic=VALUE_ATOMIC, block_number=BALANCE_BLOCK + 1),
    )
    assert later is not None
    assert later.status is SettlementStatus.CLAIMED


async def test_a_failed_intent_releases_its_reservation_and_a_replay_is_still_refused(
    two_processes: tuple[AsyncEngine, AsyncEngine],
) -> None:
    intents = SettlementIntents(two_processes[0])
    nonce = "0x" + secrets.token_hex(32)
    first = await _claim(intents, balance_atomic=VALUE_ATOMIC, nonce=nonce)
    assert first is not None
    # The same authorization again is a replay (None), whatever the balance says.
    assert await _claim(intents, balance_atomic=0, nonce=nonce) is None
    await intents.record_failed(first.id, reason="insufficient_funds")
    again = await _claim(intents, balance_atomic=VALUE_ATOMIC)
    assert again is not None
