"""Deployment health: the breaker's life cycle, Retry-After, the single half-open probe, EWMAs, the window.

Method: a fake clock drives every transition, so no test sleeps. Each behaviour runs against the
in-process tracker and against the Redis-backed one (skipped with a reason when Redis is absent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from proxy.routing.health import (
    HealthPolicy,
    HealthTracker,
    InMemoryHealthTracker,
    RedisHealthTracker,
)
from tests.fixtures.clock import FakeClock
from tests.fixtures.router import RedisForTest

POLICY = HealthPolicy(
    ewma_alpha=0.5,
    error_window_s=60.0,
    error_bucket_s=5.0,
    failures_to_open=3,
    error_rate_to_open=0.5,
    window_requests_to_judge_min=10,
    open_base_s=10.0,
    open_max_s=40.0,
    retry_after_max_s=600.0,
    probe_lease_s=30.0,
)
DEPLOYMENT = "groq/llama-3.3-70b-versatile"


MakeTracker = Callable[[], HealthTracker]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def make_tracker(request: pytest.FixtureRequest, clock: FakeClock) -> MakeTracker:
    """Builds trackers over one store: every tracker made by one factory sees the same state."""
    if request.param == "memory":
        shared = InMemoryHealthTracker(policy=POLICY, clock=clock)
        return lambda: shared
    redis: RedisForTest = request.getfixturevalue("redis_for_test")
    return lambda: RedisHealthTracker(redis.client, key_prefix=redis.key_prefix, policy=POLICY, clock=clock)


async def fail_n(tracker: HealthTracker, n: int, *, kind: str = "server_error") -> None:
    for _ in range(n):
        await tracker.record_failure(DEPLOYMENT, kind=kind)


async def test_fresh_deployment_is_closed_and_admits(make_tracker: MakeTracker) -> None:
    tracker = make_tracker()
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "closed"
    assert health.latency_ewma_s is None
    assert health.requests_in_window == 0
    assert await tracker.try_acquire(DEPLOYMENT)


async def test_opens_after_consecutive_failures_and_refuses(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open - 1)
    assert (await tracker.snapshot(DEPLOYMENT)).breaker == "closed"
    await fail_n(tracker, 1)
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "open"
    assert health.open_remaining_s == pytest.approx(POLICY.open_base_s)
    assert not await tracker.try_acquire(DEPLOYMENT)
    clock.advance(POLICY.open_base_s - 0.01)
    assert not await tracker.try_acquire(DEPLOYMENT)


async def test_success_resets_the_consecutive_count(make_tracker: MakeTracker) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open - 1)
    await tracker.record_success(DEPLOYMENT, latency_s=0.2)
    await fail_n(tracker, POLICY.failures_to_open - 1)
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "closed"
    assert health.consecutive_failures == POLICY.failures_to_open - 1


async def test_half_open_admits_exactly_one_probe_then_closes_on_success(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open)
    clock.advance(POLICY.open_base_s)
    assert (await tracker.snapshot(DEPLOYMENT)).breaker == "half_open"
    assert await tracker.try_acquire(DEPLOYMENT)
    assert not await tracker.try_acquire(DEPLOYMENT)
    assert (await tracker.snapshot(DEPLOYMENT)).probe_in_flight
    await tracker.record_success(DEPLOYMENT, latency_s=0.3)
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "closed"
    assert health.consecutive_failures == 0
    # Recovery starts a clean window: the failures that opened the breaker no longer count.
    assert (health.requests_in_window, health.failures_in_window) == (1, 0)
    assert await tracker.try_acquire(DEPLOYMENT)
    assert await tracker.try_acquire(DEPLOYMENT)


async def test_concurrent_acquires_in_half_open_grant_one_probe(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open)
    clock.advance(POLICY.open_base_s)
    # Two trackers over the same store stand for two replicas racing for the probe.
    other = make_tracker()
    grants = await asyncio.gather(*(t.try_acquire(DEPLOYMENT) for t in [tracker, other] * 10))
    assert sum(grants) == 1


async def test_failed_probe_reopens_with_doubled_cool_down(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open)
    cool_down_s = POLICY.open_base_s
    for _ in range(4):
        clock.advance(cool_down_s)
        assert await tracker.try_acquire(DEPLOYMENT)
        await tracker.record_failure(DEPLOYMENT, kind="timeout")
        cool_down_s = min(POLICY.open_max_s, cool_down_s * 2)
        health = await tracker.snapshot(DEPLOYMENT)
        assert health.breaker == "open"
        assert health.open_remaining_s == pytest.approx(cool_down_s)
    assert cool_down_s == POLICY.open_max_s


async def test_probe_lease_expires_when_its_outcome_is_never_recorded(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open)
    clock.advance(POLICY.open_base_s)
    assert await tracker.try_acquire(DEPLOYMENT)
    clock.advance(POLICY.probe_lease_s - 0.01)
    assert not await tracker.try_acquire(DEPLOYMENT)
    clock.advance(0.02)
    assert await tracker.try_acquire(DEPLOYMENT)


async def test_429_with_retry_after_opens_at_once_for_at_least_that_long(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await tracker.record_failure(DEPLOYMENT, kind="rate_limited", retry_after_s=120.0)
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "open"
    assert health.open_remaining_s == pytest.approx(120.0)
    clock.advance(119.9)
    assert not await tracker.try_acquire(DEPLOYMENT)
    clock.advance(0.1)
    assert await tracker.try_acquire(DEPLOYMENT)


async def test_retry_after_extends_an_open_breaker_and_is_capped(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open)
    await tracker.record_failure(DEPLOYMENT, kind="rate_limited", retry_after_s=30.0)
    assert (await tracker.snapshot(DEPLOYMENT)).open_remaining_s == pytest.approx(30.0)
    # A shorter Retry-After never shortens the cool-down.
    await tracker.record_failure(DEPLOYMENT, kind="rate_limited", retry_after_s=1.0)
    assert (await tracker.snapshot(DEPLOYMENT)).open_remaining_s == pytest.approx(30.0)
    await tracker.record_failure(DEPLOYMENT, kind="rate_limited", retry_after_s=86_400.0)
    assert (await tracker.snapshot(DEPLOYMENT)).open_remaining_s == pytest.approx(POLICY.retry_after_max_s)


async def test_429_without_retry_after_counts_as_one_failure(make_tracker: MakeTracker) -> None:
    tracker = make_tracker()
    await tracker.record_failure(DEPLOYMENT, kind="rate_limited")
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.breaker == "closed"
    assert health.last_failure_kind == "rate_limited"


async def test_caller_errors_do_not_count_and_release_a_probe(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    await fail_n(tracker, POLICY.failures_to_open + 2, kind="bad_request")
    health = await tracker.snapshot(DEPLOYMENT)
    assert (health.breaker, health.failures_in_window, health.consecutive_failures) == ("closed", 0, 0)
    await fail_n(tracker, POLICY.failures_to_open)
    clock.advance(POLICY.open_base_s)
    assert await tracker.try_acquire(DEPLOYMENT)
    await tracker.record_failure(DEPLOYMENT, kind="context_length")
    # The probe ended without a verdict, so the next request may probe.
    assert (await tracker.snapshot(DEPLOYMENT)).breaker == "half_open"
    assert await tracker.try_acquire(DEPLOYMENT)


async def test_error_rate_over_the_window_opens_and_old_failures_slide_out(
    make_tracker: MakeTracker, clock: FakeClock
) -> None:
    tracker = make_tracker()
    for _ in range(4):  # alternate, so no run of consecutive failures reaches the threshold
        await tracker.record_failure(DEPLOYMENT, kind="server_error")
        await tracker.record_success(DEPLOYMENT, latency_s=0.1)
    health = await tracker.snapshot(DEPLOYMENT)
    assert (health.requests_in_window, health.failures_in_window, health.error_rate) == (8, 4, 0.5)
    clock.advance(POLICY.error_window_s)
    assert (await tracker.snapshot(DEPLOYMENT)).requests_in_window == 0
    for _ in range(5):
        await tracker.record_success(DEPLOYMENT, latency_s=0.1)
        await tracker.record_failure(DEPLOYMENT, kind="server_error")
    # Ten requests, half failed: enough to judge, and bad enough to open.
    assert (await tracker.snapshot(DEPLOYMENT)).breaker == "open"


async def test_latency_and_ttft_ewmas(make_tracker: MakeTracker) -> None:
    tracker = make_tracker()
    await tracker.record_success(DEPLOYMENT, latency_s=1.0, ttft_s=0.2)
    await tracker.record_success(DEPLOYMENT, latency_s=3.0)
    await tracker.record_success(DEPLOYMENT, latency_s=2.0, ttft_s=0.4)
    health = await tracker.snapshot(DEPLOYMENT)
    assert health.latency_ewma_s == pytest.approx(0.5 * 2.0 + 0.5 * (0.5 * 3.0 + 0.5 * 1.0))
    assert health.ttft_ewma_s == pytest.approx(0.3)
    assert health.successes_total == 3


async def test_snapshots_cover_requested_and_seen_deployments(make_tracker: MakeTracker) -> None:
    tracker = make_tracker()
    await tracker.record_success("a/one", latency_s=0.1)
    await fail_n(tracker, 1)
    seen = await tracker.snapshots()
    assert sorted(seen) == sorted(["a/one", DEPLOYMENT])
    asked = await tracker.snapshots(["a/one", "b/never"])
    assert list(asked) == ["a/one", "b/never"]
    assert asked["b/never"].breaker == "closed"


def test_policy_rejects_inconsistent_windows() -> None:
    with pytest.raises(ValueError, match="whole multiple"):
        HealthPolicy(error_window_s=7.0, error_bucket_s=5.0)
    with pytest.raises(ValueError, match="open_base_s"):
        HealthPolicy(open_base_s=100.0, open_max_s=10.0)
