"""`org_router_with_clock(clock)`: the running router whose org clock (budget periods, org records) is
`clock`, set on the app before it starts, as an embedder would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import ORG_CLOCK
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from tests.fixtures.app import RunningRouter, router_settings, start_router

OrgRouterWithClock = Callable[[Callable[[], float]], contextlib.AbstractAsyncContextManager[RunningRouter]]


@pytest.fixture
def org_router_with_clock(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> OrgRouterWithClock:
    @contextlib.asynccontextmanager
    async def make(clock: Callable[[], float]) -> AsyncIterator[RunningRouter]:
        settings = router_settings(
            anvil=anvil,
            tokens=tokens,
            settlement_key=anvil_accounts[0].key.hex(),
            simulator_base_url=simulator.base_url,
            database_url=database_url,
        )

        def prepare(app: web.Application) -> None:
            app[ORG_CLOCK] = clock

        async with start_router(
            aiohttp_client,
            settings,
            anvil=anvil,
            tokens=tokens,
            anvil_accounts=anvil_accounts,
            simulator=simulator,
            prepare=prepare,
        ) as running:
            yield running

    return make
