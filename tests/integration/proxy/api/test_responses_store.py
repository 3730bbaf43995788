"""Stored responses last exactly their retention, belong to one key (a wallet key and an org key with the
same id are different owners), and expired rows are purged in bounded
batches as new ones are written.

Method: real migrations on SQLite and PostgreSQL, the store on an injected clock (unix ms).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import create_ledger_engine
from proxy.api.responses_store import PURGE_BATCH_MAX, ResponseOwner, ResponseStore
from proxy.api.responses_types import InputItem, MessageItem
from proxy.db.migrate import migrate_proxy
from proxy.db.tables import stored_responses
from proxy.settings import ResponsesSettings

RETENTION_S = 3_600
START_MS = 1_800_000_000_000
ITEMS: list[InputItem] = [
    MessageItem(role="user", content="Hi"),
    MessageItem(role="assistant", content="Hello"),
]
WALLET_KEY_1 = ResponseOwner(kind="wallet", key_id=1)
WALLET_KEY_2 = ResponseOwner(kind="wallet", key_id=2)
ORG_KEY_1 = ResponseOwner(kind="org", key_id=1)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_ledger_engine(database_url)
    try:
        await migrate_proxy(engine)
        yield engine
    finally:
        await engine.dispose()


def store_at(engine: AsyncEngine, now_ms: list[int]) -> ResponseStore:
    return ResponseStore(engine, ResponsesSettings(retention_s=RETENTION_S), clock_unix_ms=lambda: now_ms[0])


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count: int = (
            await connection.execute(sa.select(sa.func.count()).select_from(stored_responses))
        ).scalar_one()
    return count


async def test_a_stored_response_lasts_its_retention_for_its_key_only(engine: AsyncEngine) -> None:
    now = [START_MS]
    store = store_at(engine, now)
    await store.save(owner=WALLET_KEY_1, items=ITEMS, response={"id": "resp_a", "object": "response"})
    now[0] += RETENTION_S * 1000 - 1
    found = await store.load(owner=WALLET_KEY_1, response_id="resp_a")
    assert found is not None
    assert found.items == ITEMS
    assert found.response == {"id": "resp_a", "object": "response"}
    assert await store.load(owner=WALLET_KEY_2, response_id="resp_a") is None
    assert not await store.delete(owner=WALLET_KEY_2, response_id="resp_a")
    assert await store.load(owner=ORG_KEY_1, response_id="resp_a") is None, "org key 1 is not wallet key 1"
    assert not await store.delete(owner=ORG_KEY_1, response_id="resp_a")
    now[0] += 1
    assert await store.load(owner=WALLET_KEY_1, response_id="resp_a") is None, "past its retention it is gone"
    assert not await store.delete(owner=WALLET_KEY_1, response_id="resp_a")


async def test_an_org_key_owns_its_own_rows(engine: AsyncEngine) -> None:
    store = store_at(engine, [START_MS])
    await store.save(owner=ORG_KEY_1, items=ITEMS, response={"id": "resp_org"})
    assert await store.load(owner=WALLET_KEY_1, response_id="resp_org") is None
    assert not await store.delete(owner=WALLET_KEY_1, response_id="resp_org")
    found = await store.load(owner=ORG_KEY_1, response_id="resp_org")
    assert found is not None
    assert found.items == ITEMS
    assert await store.delete(owner=ORG_KEY_1, response_id="resp_org")


async def test_deleting_is_once(engine: AsyncEngine) -> None:
    store = store_at(engine, [START_MS])
    await store.save(owner=WALLET_KEY_1, items=ITEMS, response={"id": "resp_b"})
    assert await store.delete(owner=WALLET_KEY_1, response_id="resp_b")
    assert not await store.delete(owner=WALLET_KEY_1, response_id="resp_b")
    assert await store.load(owner=WALLET_KEY_1, response_id="resp_b") is None


async def test_expired_rows_are_purged_in_bounded_batches(engine: AsyncEngine) -> None:
    now = [START_MS]
    store = store_at(engine, now)
    expired = PURGE_BATCH_MAX + 5
    for index in range(expired):
        await store.save(owner=WALLET_KEY_1, items=ITEMS, response={"id": f"resp_old_{index}"})
    now[0] += RETENTION_S * 1000
    await store.save(owner=WALLET_KEY_1, items=ITEMS, response={"id": "resp_new_1"})
    assert await rows(engine) == expired - PURGE_BATCH_MAX + 1
    await store.save(owner=WALLET_KEY_1, items=ITEMS, response={"id": "resp_new_2"})
    assert await rows(engine) == 2, "the rest of the expired rows went with the next write"
