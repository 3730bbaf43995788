"""Requests and tokens per minute on org keys and units, in fixed UTC-minute windows, all or nothing.

A request made with an org key must fit every rate limit on its path (the key's, each unit's from its team
up to the root): in one atomic step every window counter is checked and, only if all fit, incremented by
one request and by the request's token bound (prompt + max output tokens, what its quote assumed). When the
request is resolved, the tokens it did not use are given back to the window it was admitted in, so a
window's tokens are its requests' real tokens plus the bounds of those in flight: never under the truth,
so a limit is never exceeded. With Redis (`redis_url`) the counters are shared by every replica (one Lua
script: no check-then-increment race across processes); without, they live in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from proxy.errors import RateLimited
from proxy.governance.models import OrgPrincipal, ScopeKind

__all__ = [
    "Admission",
    "InProcessCounters",
    "RateLimit",
    "RateLimiter",
    "RedisCounters",
    "WindowCounters",
]

WINDOW_S = 60
# A window's counters outlive it by one window, for the give-back of requests still running at its end.
COUNTER_TTL_S = 2 * WINDOW_S


@dataclass(frozen=True)
class RateLimit:
    id: int
    org_id: int
    scope_kind: ScopeKind
    scope_id: int
    requests_per_minute: int | None
    tokens_per_minute: int | None


class WindowCounters(Protocol):
    async def admit(self, checks: Sequence[tuple[str, int, int]]) -> int | None:
        """Each check is (counter, increment, limit). If every counter + increment ≤ limit, increments all
        and returns None; else increments nothing and returns the index of the first that does not fit."""
        ...

    async def give_back(self, counter: str, amount: int) -> None: ...


class InProcessCounters:
    """Counters of this process only. Atomic because no await interrupts `admit`."""

    def __init__(self, clock_s: Callable[[], float] = time.time) -> None:
        self._values: dict[str, tuple[int, float]] = {}  # counter -> (value, expires at)
        self._clock_s = clock_s

    def _value(self, counter: str, now_s: float) -> int:
        value, expires_s = self._values.get(counter, (0, now_s + COUNTER_TTL_S))
        return value if expires_s > now_s else 0

    async def admit(self, checks: Sequence[tuple[str, int, int]]) -> int | None:
        now_s = self._clock_s()
        for counter in [c for c, (_, expires_s) in self._values.items() if expires_s <= now_s]:
            del self._values[counter]  # Bounded: only the live windows' counters stay.
        for index, (counter, increment, limit) in enumerate(checks):
            if self._value(counter, now_s) + increment > limit:
                return index
        for counter, increment, _ in checks:
            self._values[counter] = (self._value(counter, now_s) + increment, now_s + COUNTER_TTL_S)
        return None

    async def give_back(self, counter: str, amount: int) -> None:
        if counter in self._values:
            value, expires_s = self._values[counter]
            self._values[counter] = (max(0, value - amount), expires_s)


# KEYS: counters; ARGV: increment_1, limit_1, increment_2, limit_2, …, then the TTL. Returns 0 when all fit
# (and were incremented), else the 1-based index of the first that does not.
_ADMIT_SCRIPT = """
for i = 1, #KEYS do
  local value = tonumber(redis.call('GET', KEYS[i]) or '0')
  if value + tonumber(ARGV[2 * i - 1]) > tonumber(ARGV[2 * i]) then return i end
end
local ttl = tonumber(ARGV[2 * #KEYS + 1])
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  redis.call('EXPIRE', KEYS[i], ttl)
end
return 0
"""


class RedisCounters:
    """Counters every replica shares, under `key_prefix`."""

    def __init__(self, client: Redis, *, key_prefix: str) -> None:
        assert key_prefix, "a key prefix keeps the counters apart from other users of the Redis"
        self._client = client
        self._prefix = key_prefix
        self._admit = client.register_script(_ADMIT_SCRIPT)

    async def admit(self, checks: Sequence[tuple[str, int, int]]) -> int | None:
        keys = [self._prefix + counter for counter, _, _ in checks]
        arguments: list[int] = [part for _, increment, limit in checks for part in (increment, limit)]
        refused = int(await self._admit(keys=keys, args=[*arguments, COUNTER_TTL_S]))
        return None if refused == 0 else refused - 1

    async def give_back(self, counter: str, amount: int) -> None:
        await self._client.decrby(self._prefix + counter, amount)


@dataclass(frozen=True)
class Admission:
    """What a request reserved: its token bound on each token counter, to settle once it is resolved."""

    limiter: RateLimiter
    token_counters: tuple[str, ...]
    tokens_reserved: int

    async def settle(self, tokens_used: int) -> None:
        unused = self.tokens_reserved - min(max(tokens_used, 0), self.tokens_reserved)
        if unused:
            for counter in self.token_counters:
                await self.limiter.counters.give_back(counter, unused)


class RateLimiter:
    def __init__(self, counters: WindowCounters, *, clock_s: Callable[[], float] = time.time) -> None:
        self.counters = counters
        self._clock_s = clock_s

    async def admit(self, principal: OrgPrincipal, limits: Sequence[RateLimit], *, tokens: int) -> Admission:
        """Admits one request of at most `tokens` tokens, or raises RateLimited naming the limit."""
        assert tokens >= 0
        now_s = self._clock_s()
        window = int(now_s) // WINDOW_S
        checks: list[tuple[str, int, int]] = []
        owners: list[tuple[RateLimit, str]] = []
        token_counters = []
        for limit in limits:
            if limit.requests_per_minute is not None:
                checks.append((f"{limit.id}:{window}:requests", 1, limit.requests_per_minute))
                owners.append((limit, "requests"))
            if limit.tokens_per_minute is not None:
                counter = f"{limit.id}:{window}:tokens"
                checks.append((counter, tokens, limit.tokens_per_minute))
                owners.append((limit, "tokens"))
                token_counters.append(counter)
        if checks:
            refused = await self.counters.admit(checks)
            if refused is not None:
                limit, what = owners[refused]
                per_minute = limit.requests_per_minute if what == "requests" else limit.tokens_per_minute
                retry_after_s = max(1, (window + 1) * WINDOW_S - int(now_s))
                raise RateLimited(
                    f"Rate limit {limit.id} on {limit.scope_kind.value} {limit.scope_id} "
                    f"({per_minute} {what} per minute) is reached; retry in {retry_after_s} s.",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(retry_after_s)},
                )
        return Admission(limiter=self, token_counters=tuple(token_counters), tokens_reserved=tokens)
