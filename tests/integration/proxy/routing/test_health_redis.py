"""The Redis-backed health store: replicas agree, prefixes isolate, and an absent Redis fails loudly.

Method: two `RedisHealthTracker`s over separate clients stand for two replicas; a fake clock shared by
both drives time. Skipped with a reason when Redis is unreachable (a failure under CI=true).
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from proxy.routing.errors import HealthStoreUnavailable
from proxy.routing.health import HealthPolicy, RedisHealthTracker
from tests.fixtures.clock import FakeClock
from tests.fixtures.router import REDIS_URL, RedisForTest

POLICY = HealthPolicy(failures_to_open=2, open_base_s=5.0, open_max_s=60.0, ewma_alpha=0.5)
DEPLOYMENT = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"


async def test_two_replicas_agree_on_breaker_and_ewmas(redis_for_test: RedisForTest) -> None:
    clock = FakeClock(1_700_000_000.0)
    second_client = Redis.from_url(REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        first = RedisHealthTracker(
            redis_for_test.client, key_prefix=redis_for_test.key_prefix, policy=POLICY, clock=clock
        )
        second = RedisHealthTracker(
            second_client, key_prefix=redis_for_test.key_prefix, policy=POLICY, clock=clock
        )
        await first.record_success(DEPLOYMENT, latency_s=1.0, ttft_s=0.5)
        await second.record_success(DEPLOYMENT, latency_s=3.0, ttft_s=1.5)
        seen_by_first, seen_by_second = await first.snapshot(DEPLOYMENT), await second.snapshot(DEPLOYMENT)
        assert seen_by_first == seen_by_second
        assert seen_by_first.latency_ewma_s == pytest.approx(2.0)
        assert seen_by_first.ttft_ewma_s == pytest.approx(1.0)

        await first.record_failure(DEPLOYMENT, kind="server_error")
        await second.record_failure(DEPLOYMENT, kind="connection")
        assert (await first.snapshot(DEPLOYMENT)).breaker == "open"
        assert not await second.try_acquire(DEPLOYMENT)

        clock.now_s += POLICY.open_base_s
        assert await second.try_acquire(DEPLOYMENT)
        assert not await first.try_acquire(DEPLOYMENT)
        await second.record_success(DEPLOYMENT, latency_s=1.0)
        assert (await first.snapshot(DEPLOYMENT)).breaker == "closed"
        assert await first.try_acquire(DEPLOYMENT)
    finally:
        await second_client.aclose()


async def test_key_prefixes_keep_stores_apart(redis_for_test: RedisForTest) -> None:
    clock = FakeClock(1_700_000_000.0)
    mine = RedisHealthTracker(
        redis_for_test.client, key_prefix=redis_for_test.key_prefix + "a:", policy=POLICY, clock=clock
    )
    theirs = RedisHealthTracker(
        redis_for_test.client, key_prefix=redis_for_test.key_prefix + "b:", policy=POLICY, clock=clock
    )
    await mine.record_failure(DEPLOYMENT, kind="timeout", retry_after_s=30.0)
    assert (await mine.snapshot(DEPLOYMENT)).breaker == "open"
    assert (await theirs.snapshot(DEPLOYMENT)).breaker == "closed"
    assert list(await mine.snapshots()) == [DEPLOYMENT]
    assert await theirs.snapshots() == {}


async def test_unreachable_redis_raises_health_store_unavailable() -> None:
    # Port 1 on localhost refuses connections; nothing listens there.
    client = Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    tracker = RedisHealthTracker(
        client, key_prefix="megarouter-test:unreachable:", policy=POLICY, op_timeout_s=1.0
    )
    try:
        with pytest.raises(HealthStoreUnavailable):
            await tracker.try_acquire(DEPLOYMENT)
        with pytest.raises(HealthStoreUnavailable):
            await tracker.snapshots([DEPLOYMENT])
    finally:
        await client.aclose()
