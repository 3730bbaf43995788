"""`accounts_router`: the running router, whose withdrawals now go through the app's own Settler.transfer.

`accounts_client_factory` starts more apps on the same chain and database with chosen `accounts` settings and,
optionally, a challenge rate limiter with an injected clock (set on the app before it starts, as an
embedder would).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from eth_account.signers.local import LocalAccount

from proxy.accounts import TokenBuckets
from proxy.api.app_keys import CHALLENGE_RATE_LIMITER
from proxy.app import create_app
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.simulator import Simulators
from proxy.devnet.tokens import DevnetTokens
from proxy.settings import AccountsSettings
from tests.fixtures.app import RunningRouter, router_settings

AccountsClientFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
def accounts_router(router: RunningRouter) -> RunningRouter:
    return router


@pytest.fixture
def accounts_client_factory(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> AccountsClientFactory:
    async def make(
        accounts_settings: AccountsSettings, *, limiter: TokenBuckets | None = None, **overrides: Any
    ) -> Any:
        settings = router_settings(
            anvil=anvil,
            tokens=tokens,
            settlement_key=anvil_accounts[0].key.hex(),
            simulator_base_url=simulator.base_url,
            database_url=database_url,
            accounts=accounts_settings,
            **overrides,
        )
        app: web.Application = create_app(settings)
        if limiter is not None:
            app[CHALLENGE_RATE_LIMITER] = limiter
        return await aiohttp_client(app)

    return make
