"""`org_router_with_clock(clock)`: the running router whose org clock (budget periods, org records) is
`clock`, set on the app before it starts, as an embedder would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.api.app_keys import ORG_CLOCK
from proxy.app import create_app
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from tests.fixtures.app import RunningRouter, router_settings

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
        app = create_app(settings)
        app[ORG_CLOCK] = clock
        client = await aiohttp_client(app)
        w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
        try:
            yield RunningRouter(
                client=client,
                app=app,
                settings=settings,
                tokens=tokens,
                w3=w3,
                payers=anvil_accounts[1:],
                settlement_account=anvil_accounts[0],
                simulator=simulator,
            )
        finally:
            await w3.provider.disconnect()

    return make
