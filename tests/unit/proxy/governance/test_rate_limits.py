"""Rate limits admit a request only when every limit on its path fits, in fixed UTC-minute windows.

Method: the in-process counters and the limiter on an injected clock; no I/O.
"""

from __future__ import annotations

import pytest

from proxy.errors import RateLimited
from proxy.governance.models import OrgPrincipal, ScopeKind
from proxy.governance.rate_limits import InProcessCounters, RateLimit, RateLimiter
from tests.fixtures.clock import FakeClock

PRINCIPAL = OrgPrincipal(
    org_id=1, key_id=9, unit_id=3, unit_path=(1, 2, 3), member_id=4, credit_account="credit:org:1"
)
KEY_LIMIT = RateLimit(1, 1, ScopeKind.KEY, 9, requests_per_minute=3, tokens_per_minute=None)
TEAM_LIMIT = RateLimit(2, 1, ScopeKind.UNIT, 3, requests_per_minute=None, tokens_per_minute=1_000)


def _limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(InProcessCounters(clock), clock_s=clock)


async def test_requests_per_minute_refuse_with_retry_after_until_the_next_minute() -> None:
    clock = FakeClock(120.0 * 1_000 + 15)  # 15 s into a minute
    limiter = _limiter(clock)
    for _ in range(3):
        await limiter.admit(PRINCIPAL, [KEY_LIMIT], tokens=10)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(PRINCIPAL, [KEY_LIMIT], tokens=10)
    assert refused.value.headers == {"Retry-After": "45"}
    assert "Rate limit 1 on key 9 (3 requests per minute)" in refused.value.message
    clock.advance(45)  # the next window starts empty
    await limiter.admit(PRINCIPAL, [KEY_LIMIT], tokens=10)


async def test_all_or_nothing_and_unused_tokens_come_back() -> None:
    clock = FakeClock(60.0 * 1_000)
    limiter = _limiter(clock)
    first = await limiter.admit(PRINCIPAL, [KEY_LIMIT, TEAM_LIMIT], tokens=600)
    # The team's tokens do not fit: the key's request counter must not move either.
    with pytest.raises(RateLimited, match="Rate limit 2 on unit 3"):
        await limiter.admit(PRINCIPAL, [KEY_LIMIT, TEAM_LIMIT], tokens=600)
    await first.settle(100)  # used 100 of its 600: 500 come back
    second = await limiter.admit(PRINCIPAL, [KEY_LIMIT, TEAM_LIMIT], tokens=600)
    await second.settle(0)
    await limiter.admit(PRINCIPAL, [KEY_LIMIT, TEAM_LIMIT], tokens=600)
    # Three requests admitted (the refused one counted nothing): the key's fourth is refused.
    with pytest.raises(RateLimited, match="Rate limit 1 on key 9"):
        await limiter.admit(PRINCIPAL, [KEY_LIMIT], tokens=0)
