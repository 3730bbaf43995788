"""How long a breaker has been unhealthy: the episode starts when it leaves closed, survives failed
half-open probes (the deployment has not recovered), and ends when a probe closes it.

Method: the in-process tracker on a FakeClock; the alert detector reads `unhealthy_for_s` and names the
episode by `opened_at_s`.
"""

from __future__ import annotations

from proxy.routing.health import HealthPolicy, InMemoryHealthTracker
from tests.fixtures.clock import FakeClock

POLICY = HealthPolicy(failures_to_open=2, open_base_s=10.0, open_max_s=40.0)
DEPLOYMENT = "openai/gpt-4o-mini"


async def test_an_episode_spans_failed_probes_and_ends_when_the_breaker_closes() -> None:
    clock = FakeClock(100.0)
    tracker = InMemoryHealthTracker(policy=POLICY, clock=clock)
    closed = await tracker.snapshot(DEPLOYMENT)
    assert (closed.unhealthy_for_s, closed.opened_at_s) == (0.0, None)

    for _ in range(2):
        await tracker.record_failure(DEPLOYMENT, kind="server_error")
    opened = await tracker.snapshot(DEPLOYMENT)
    assert (opened.breaker, opened.opened_at_s, opened.unhealthy_for_s) == ("open", 100.0, 0.0)

    clock.advance(10.0)
    assert await tracker.try_acquire(DEPLOYMENT)  # the half-open probe
    await tracker.record_failure(DEPLOYMENT, kind="server_error")
    clock.advance(5.0)
    reopened = await tracker.snapshot(DEPLOYMENT)
    assert (reopened.breaker, reopened.opened_at_s, reopened.unhealthy_for_s) == ("open", 100.0, 15.0)

    clock.advance(20.0)  # past the doubled cool-down: half-open, still the same episode
    waiting = await tracker.snapshot(DEPLOYMENT)
    assert (waiting.breaker, waiting.unhealthy_for_s) == ("half_open", 35.0)

    assert await tracker.try_acquire(DEPLOYMENT)
    await tracker.record_success(DEPLOYMENT, latency_s=0.1)
    recovered = await tracker.snapshot(DEPLOYMENT)
    assert (recovered.breaker, recovered.opened_at_s, recovered.unhealthy_for_s) == ("closed", None, 0.0)

    for _ in range(2):
        await tracker.record_failure(DEPLOYMENT, kind="server_error")
    assert (await tracker.snapshot(DEPLOYMENT)).opened_at_s == 135.0  # a new episode
