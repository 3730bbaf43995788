"""`fault_router`: the running router with one deployment on the "primary" simulator and all others on the
"secondary", so that faults injected on the primary hit exactly one deployment of a model served twice.

Breaker timings are shortened through Settings' `health_policy`, and the app's health clock is `fault_clock`:
a breaker stays open until the test moves that clock, however busy the machine is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.catalog import load_catalog
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.providers import simulated_providers
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.routing.health import HealthPolicy
from tests.fixtures.app import RunningRouter, router_settings, start_router
from tests.fixtures.clock import FakeClock

# Llama 3.3 70B is served by Groq and by Together: Groq is the deployment under fault.
FAULTY_MODEL = "groq/llama-3.3-70b-versatile"
FAULTY_PROVIDER = "groq"
# Short enough that a breaker recovers within a test, long enough to be seen open by a follow-up read.
TEST_HEALTH_POLICY = HealthPolicy(open_base_s=0.5, open_max_s=1.0, probe_lease_s=2.0)


@pytest.fixture
def fault_clock() -> FakeClock:
    """Deployment health runs on it: breakers open and close only when the test moves it."""
    return FakeClock()


@contextlib.asynccontextmanager
async def _fault_router(
    aiohttp_client: Any,
    fault_clock: FakeClock,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[RunningRouter]:
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator["secondary"].base_url,
        database_url=database_url,
    )
    catalog = load_catalog()
    providers = dict(settings.providers)
    providers[FAULTY_PROVIDER] = simulated_providers(
        catalog, simulator_base_url=simulator["primary"].base_url
    )[FAULTY_PROVIDER]
    app_settings = settings.model_copy(update={"providers": providers, "health_policy": TEST_HEALTH_POLICY})
    async with start_router(
        aiohttp_client,
        app_settings,
        anvil=anvil,
        tokens=tokens,
        anvil_accounts=anvil_accounts,
        simulator=simulator,
        health_clock=fault_clock,
        span_exporter=span_exporter,
    ) as running:
        yield running


@pytest.fixture
async def fault_router(
    aiohttp_client: Any,
    fault_clock: FakeClock,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> AsyncIterator[RunningRouter]:
    async with _fault_router(
        aiohttp_client, fault_clock, anvil, tokens, anvil_accounts, simulator, database_url
    ) as running:
        yield running


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """Every span the traced router ends, kept in memory (never a network)."""
    return InMemorySpanExporter()


@pytest.fixture
async def traced_fault_router(
    aiohttp_client: Any,
    fault_clock: FakeClock,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
    span_exporter: InMemorySpanExporter,
) -> AsyncIterator[RunningRouter]:
    """`fault_router` with tracing on: its spans go to `span_exporter`."""
    async with _fault_router(
        aiohttp_client, fault_clock, anvil, tokens, anvil_accounts, simulator, database_url, span_exporter
    ) as running:
        yield running
