"""Rate-limit counters in Redis: replicas share them, and concurrent admissions never exceed a limit.

Method: the machine's Redis with a key prefix of this test (tests/fixtures/router.py); two limiters on two
clients stand for two replicas; 200 concurrent admissions against a limit of 37 requests in one window.
"""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import RateLimited
from proxy.governance.models import OrgPrincipal, ScopeKind
from proxy.governance.rate_limits import RateLimit, RateLimiter, RedisCounters
from tests.fixtures.clock import FakeClock
from tests.fixtures.router import RedisForTest, _new_client

PRINCIPAL = OrgPrincipal(
    org_id=1, key_id=9, unit_id=3, unit_path=(1, 3), member_id=None, credit_account="credit:org:1"
)
LIMIT = RateLimit(1, 1, ScopeKind.UNIT, 3, requests_per_minute=37, tokens_per_minute=10_000)


async def test_two_replicas_admit_at_most_the_limit(redis_for_test: RedisForTest) -> None:
    clock = FakeClock(1_800_000_000.0)
    other_client = _new_client()
    try:
        limiters = [
            RateLimiter(RedisCounters(client, key_prefix=redis_for_test.key_prefix), clock_s=clock)
            for client in (redis_for_test.client, other_client)
        ]

        async def attempt(index: int) -> bool:
            try:
                await limiters[index % 2].admit(PRINCIPAL, [LIMIT], tokens=100)
            except RateLimited:
                return False
            return True

        admitted = await asyncio.gather(*(attempt(i) for i in range(200)))
        assert sum(admitted) == 37
        tokens = await redis_for_test.client.get(
            f"{redis_for_test.key_prefix}1:{int(clock.now_s) // 60}:tokens"
        )
        assert tokens is not None
        assert int(tokens) == 3_700
        clock.advance(60)
        await limiters[1].admit(PRINCIPAL, [LIMIT], tokens=100)  # a new window
    finally:
        await other_client.aclose()


async def test_tokens_refuse_and_come_back(redis_for_test: RedisForTest) -> None:
    clock = FakeClock(1_800_000_000.0)
    limiter = RateLimiter(
        RedisCounters(redis_for_test.client, key_prefix=redis_for_test.key_prefix), clock_s=clock
    )
    admission = await limiter.admit(PRINCIPAL, [LIMIT], tokens=9_000)
    with pytest.raises(RateLimited, match="10000 tokens per minute"):
        await limiter.admit(PRINCIPAL, [LIMIT], tokens=2_000)
    await admission.settle(1_000)
    await limiter.admit(PRINCIPAL, [LIMIT], tokens=2_000)
