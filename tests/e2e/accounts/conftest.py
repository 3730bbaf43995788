"""`accounts_router`: the lead's RunningRouter with prepaid accounts installed (routes, context, a sender).

Until the lead wires `setup_accounts` into create_app, this builds the app exactly as the `router` fixture
does and adds the accounts pieces before the app starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.accounts import TRANSFER_SENDER, setup_accounts
from proxy.app import create_app
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetTokens
from proxy.simulator import Simulators
from tests.e2e.accounts.transfer_sender import Web3TransferSender
from tests.fixtures.app import RunningRouter, router_settings


@pytest.fixture
async def accounts_router(
    aiohttp_client: Any,
    anvil: AnvilNode,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
    simulator: Simulators,
    database_url: str,
) -> AsyncIterator[RunningRouter]:
    settings = router_settings(
        anvil=anvil,
        tokens=tokens,
        settlement_key=anvil_accounts[0].key.hex(),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
    )
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    app = create_app(settings)
    app[TRANSFER_SENDER] = Web3TransferSender(w3, anvil_accounts[0], chain_id=anvil.chain_id)
    setup_accounts(app)
    client = await aiohttp_client(app)
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
