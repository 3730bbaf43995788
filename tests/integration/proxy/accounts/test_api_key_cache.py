"""API keys are answered from process memory for a bounded time, and a revoke is never missed (issue 10).

Goal: the key lookup leaves the request path (one database read per key per `api_key_cache_ttl_s`), yet a
revoked key stops working at once in the process that revoked it and within the TTL everywhere else.
Method: two `ApiKeys` on one database stand for two replicas, on an injected clock (no sleeps). Reads are
counted with a cursor hook on the engine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import migrate
from proxy.accounts import ApiKeys
from proxy.accounts.siwe import SiweScope
from proxy.db.migrate import migrate_proxy
from proxy.errors import AuthenticationFailed
from proxy.settings import AccountsSettings
from tests.e2e.accounts.helpers import sign_text

SCOPE = SiweScope(domain="router.example.com", uri="https://router.example.com", chain_id=8453)
TTL_S = 2.0


class ManualClock:
    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    await migrate(engine)
    await migrate_proxy(engine)
    yield engine
    await engine.dispose()


async def _issued_key(keys: ApiKeys) -> tuple[str, int, str]:
    account = Account.create()
    challenge = await keys.issue_challenge(account.address)
    issued = await keys.create_key(
        address=account.address,
        message=challenge.message,
        signature=sign_text(account, challenge.message),
        name=None,
    )
    return issued.key, issued.info.id, account.address


def _count_key_reads(engine: AsyncEngine) -> list[str]:
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "account_api_keys" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return reads


async def test_a_cached_key_is_read_once_per_ttl(engine: AsyncEngine) -> None:
    clock = ManualClock()
    keys = ApiKeys(engine, AccountsSettings(api_key_cache_ttl_s=TTL_S), scope=SCOPE, clock_unix_s=clock)
    key, key_id, _ = await _issued_key(keys)
    reads = _count_key_reads(engine)
    for _ in range(5):
        assert (await keys.authenticate(key)).id == key_id
    assert len(reads) == 1
    clock.now_s += TTL_S
    await keys.authenticate(key)
    assert len(reads) == 2


async def test_a_revoke_is_seen_at_once_here_and_within_the_ttl_by_another_replica(
    engine: AsyncEngine,
) -> None:
    clock = ManualClock()
    settings = AccountsSettings(api_key_cache_ttl_s=TTL_S)
    here = ApiKeys(engine, settings, scope=SCOPE, clock_unix_s=clock)
    other = ApiKeys(engine, settings, scope=SCOPE, clock_unix_s=clock)
    key, key_id, wallet = await _issued_key(here)
    await here.authenticate(key)
    await other.authenticate(key)

    revoked = await here.revoke(key_id, wallet=wallet)
    assert revoked is not None
    assert revoked.revoked
    with pytest.raises(AuthenticationFailed) as refused:
        await here.authenticate(key)
    assert refused.value.code == "api_key_revoked"
    # The other replica still holds its copy, read before the revoke: it may serve it for the TTL, not longer.
    assert (await other.authenticate(key)).id == key_id
    clock.now_s += TTL_S
    with pytest.raises(AuthenticationFailed) as refused_there:
        await other.authenticate(key)
    assert refused_there.value.code == "api_key_revoked"


async def test_unknown_keys_are_never_cached(engine: AsyncEngine) -> None:
    keys = ApiKeys(
        engine, AccountsSettings(api_key_cache_ttl_s=TTL_S), scope=SCOPE, clock_unix_s=ManualClock()
    )
    reads = _count_key_reads(engine)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await keys.authenticate("mr_live_not-a-key")
    assert len(reads) == 3


async def test_a_zero_ttl_reads_every_time(engine: AsyncEngine) -> None:
    keys = ApiKeys(engine, AccountsSettings(api_key_cache_ttl_s=0), scope=SCOPE, clock_unix_s=ManualClock())
    key, _, _ = await _issued_key(keys)
    reads = _count_key_reads(engine)
    for _ in range(3):
        await keys.authenticate(key)
    assert len(reads) == 3
