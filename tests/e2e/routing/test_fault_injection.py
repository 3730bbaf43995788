"""Failover under injected faults: the caller never notices while one deployment of its model is healthy.

Goal (issue 5): with the primary deployment failing 100%, 50%, and answering 429 with Retry-After, 1,000
keyed requests per case all succeed; the primary's breaker opens (GET /v1/deployments shows it) and
closes again once the fault is gone; a caller error (a 400 from upstream) is answered after one attempt.
Every request's hold is resolved exactly once, captured into the payable of the provider that served.

Method: `fault_router` puts Groq (the named deployment of Llama 3.3 70B) on the "primary" simulator and
Together (its other provider) on the "secondary"; faults go on the primary for every model. Requests go
50 at a time with an API key funded by x402, no artificial latency, breaker timings shortened through
the tracker's policy. The figures (success rate, upstream attempts per request, breaker skips) are
printed for the README (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from proxy.devnet.simulator import ANY_MODEL, FaultSpec
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import credit_balance, funded_key, holds_of
from tests.e2e.routing.conftest import FAULTY_MODEL, TEST_HEALTH_POLICY
from tests.fixtures.app import RunningRouter
from tests.fixtures.clock import FakeClock

REQUESTS_PER_CASE = 1_000
CONCURRENCY = 50
# Once the clock is past the open period, the next request probes the deployment and closes its breaker.
RECOVERY_REQUESTS_MAX = 3
BODY: dict[str, Any] = {
    "model": FAULTY_MODEL,
    "messages": [{"role": "user", "content": "Say something short."}],
    "max_tokens": 16,
}


@dataclass
class Outcome:
    status: int
    attempts: list[str]
    served: str | None


@dataclass
class Figures:
    outcomes: list[Outcome]
    elapsed_s: float

    @property
    def succeeded(self) -> int:
        return sum(outcome.status == 200 for outcome in self.outcomes)

    def upstream_attempts(self) -> Counter[int]:
        """How many upstream calls each request made (breaker skips are not calls)."""
        return Counter(
            sum(not attempt.endswith("=breaker_open") for attempt in outcome.attempts)
            for outcome in self.outcomes
        )

    def breaker_skips(self) -> int:
        return sum(attempt.endswith("=breaker_open") for o in self.outcomes for attempt in o.attempts)

    def served_by(self) -> Counter[str | None]:
        return Counter(outcome.served for outcome in self.outcomes)

    def report(self, case: str) -> str:
        return (
            f"{case}: {self.succeeded}/{len(self.outcomes)} succeeded in {self.elapsed_s:.1f}s; "
            f"upstream attempts per request {dict(sorted(self.upstream_attempts().items()))}; "
            f"breaker skips {self.breaker_skips()}; served by {dict(self.served_by())}"
        )


async def _one(router: RunningRouter, key: str, body: dict[str, Any]) -> Outcome:
    response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
    await response.read()
    attempts = response.headers.get("X-MegaRouter-Attempts", "")
    return Outcome(
        status=response.status,
        attempts=attempts.split(", ") if attempts else [],
        served=response.headers.get("X-MegaRouter-Model"),
    )


async def _burst(router: RunningRouter, key: str, *, count: int = REQUESTS_PER_CASE) -> Figures:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded() -> Outcome:
        async with gate:
            return await _one(router, key, BODY)

    started_s = time.monotonic()
    outcomes = await asyncio.gather(*(bounded() for _ in range(count)))
    return Figures(outcomes=list(outcomes), elapsed_s=time.monotonic() - started_s)


async def _deployment_health(router: RunningRouter, model_id: str) -> dict[str, Any]:
    response = await router.client.get("/v1/deployments", params={"model": model_id})
    assert response.status == 200
    data = (await response.json())["data"]
    assert len(data) == 1
    health: dict[str, Any] = data[0]["health"]
    return health


async def _until_breaker_closes(router: RunningRouter, key: str, clock: FakeClock) -> int:
    """Moves the health clock past the longest open period, then sends requests one by one until the faulty
    deployment serves again; returns how many it took."""
    clock.advance(TEST_HEALTH_POLICY.open_max_s + TEST_HEALTH_POLICY.probe_lease_s)
    for sent in range(1, RECOVERY_REQUESTS_MAX + 1):
        outcome = await _one(router, key, BODY)
        assert outcome.status == 200
        if outcome.served == FAULTY_MODEL:
            return sent
    raise AssertionError(f"the breaker did not close within {RECOVERY_REQUESTS_MAX} requests")


async def _assert_books_clean(router: RunningRouter, payer: Any, *, requests: int) -> None:
    holds = await holds_of(router, payer)
    assert len(holds) == requests
    assert {hold.state for hold in holds} == {"captured"}
    assert (await credit_balance(router, payer)).pending == 0
    ledger = router.app[LEDGER]
    captured = sum(hold.captured_amount or 0 for hold in holds)
    payables = [
        (await ledger.balance(chart.provider_payable(provider))).posted
        for provider in ("groq", "together")
        if await ledger_has(router, chart.provider_payable(provider))
    ]
    assert sum(payables) == captured
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def ledger_has(router: RunningRouter, account: str) -> bool:
    return any(info.name == account for info in await router.app[LEDGER].accounts())


CASES = {
    "primary_fails_100pct": FaultSpec(error_rate=1.0, error_status=500),
    "primary_fails_50pct": FaultSpec(error_rate=0.5, error_status=503),
    "primary_429_retry_after": FaultSpec(error_rate=1.0, error_status=429, retry_after_s=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_request_succeeds_while_one_candidate_is_healthy(
    fault_router: RunningRouter, fault_clock: FakeClock, case: str
) -> None:
    router = fault_router
    payer = router.payers[8]
    key = await funded_key(router, payer, amount_usd="1")
    primary = router.simulator["primary"]
    primary.set_fault(ANY_MODEL, CASES[case])

    figures = await _burst(router, key)
    print(figures.report(case))
    assert figures.succeeded == REQUESTS_PER_CASE, Counter(o.status for o in figures.outcomes)
    assert set(figures.upstream_attempts()) <= {1, 2}
    assert primary.stats()["llama-3.3-70b-versatile"]["injected_errors"] > 0
    health = await _deployment_health(router, FAULTY_MODEL)
    assert health["failures_total"] > 0
    if case == "primary_429_retry_after":
        assert health["last_failure_kind"] == "rate_limited"
    # The breaker opened and, the health clock standing still, stayed open for the rest of the burst: most
    # requests never called the faulty deployment.
    primary_calls = primary.stats()["llama-3.3-70b-versatile"]["requests"]
    print(f"{case}: {primary_calls} calls reached the faulty deployment")
    assert primary_calls < REQUESTS_PER_CASE // 2

    primary.reset()
    took = await _until_breaker_closes(router, key, fault_clock)
    health = await _deployment_health(router, FAULTY_MODEL)
    assert health["breaker"] == "closed"
    print(f"{case}: breaker closed again after {took} request(s) once the fault was cleared")
    await _assert_books_clean(router, payer, requests=REQUESTS_PER_CASE + took)


async def test_breaker_open_is_visible_in_deployments(fault_router: RunningRouter) -> None:
    router = fault_router
    key = await funded_key(router, router.payers[8], amount_usd="0.1")
    router.simulator["primary"].set_fault(ANY_MODEL, error_rate=1.0, error_status=429, retry_after_s=1)
    outcome = await _one(router, key, BODY)
    assert outcome.status == 200
    assert outcome.attempts[0] == f"{FAULTY_MODEL}=rate_limited"
    health = await _deployment_health(router, FAULTY_MODEL)
    assert health["breaker"] == "open"
    assert 0 < health["open_remaining_s"] <= 1.0
    assert health["last_failure_kind"] == "rate_limited"
    # While open, the plan ranks it last: the other provider serves at the first attempt, and the open
    # deployment is not called at all.
    calls_before = router.simulator["primary"].stats()["llama-3.3-70b-versatile"]["requests"]
    outcome = await _one(router, key, BODY)
    assert outcome.status == 200
    assert len(outcome.attempts) == 1
    assert outcome.attempts[0].startswith("together/")
    assert router.simulator["primary"].stats()["llama-3.3-70b-versatile"]["requests"] == calls_before


async def test_caller_error_from_upstream_is_not_retried(fault_router: RunningRouter) -> None:
    router = fault_router
    payer = router.payers[8]
    key = await funded_key(router, payer, amount_usd="0.1")
    router.simulator["primary"].set_fault(ANY_MODEL, error_rate=1.0, error_status=400)
    response = await router.client.post("/v1/chat/completions", json=BODY, headers=bearer(key))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert response.headers["X-MegaRouter-Attempts"] == f"{FAULTY_MODEL}=bad_request"
    assert router.simulator["primary"].stats()["llama-3.3-70b-versatile"]["requests"] == 1
    assert router.simulator["secondary"].stats() == {}, "no other deployment was tried"
    # The caller's error says nothing about the deployment: its breaker stays closed.
    health = await _deployment_health(router, FAULTY_MODEL)
    assert health["breaker"] == "closed"
    assert health["failures_total"] == 0
    holds = await holds_of(router, payer)
    assert [hold.state for hold in holds] == ["voided"]
    assert (await credit_balance(router, payer)).pending == 0
