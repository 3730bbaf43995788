"""Gas reconciliation on a node that keeps no past state (a pruned node; the demo's Anvil after a restart).

Method: a private Anvil started with `--prune-history`, so reads at any block but the head fail, as they do
for blocks before a restart from a state file. The wallet's transactions are then found by reading the
range's blocks: an honest history is clean, and a transaction sent by hand with the settlement key is a break.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from ledger import chart
from proxy.api.app_keys import DB_ENGINE
from proxy.devnet.simulator import Simulators
from tests.e2e.accounts.helpers import pay_for_credit
from tests.fixtures.app import RunningRouter
from tests.fixtures.chain import private_devnet
from tests.integration.proxy.chain.reconcile.conftest import (
    FUNDS_ATOMIC,
    WALLET_GAS_WEI,
    Books,
    kinds,
    recon_router,
)
from tests.integration.proxy.chain.reconcile.test_in_flight_and_gas import _send_transfer
from tests.integration.proxy.chain.watcher.conftest import PrivateChain

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
async def pruned_chain(anvil_accounts: list[LocalAccount]) -> AsyncIterator[PrivateChain]:
    async with private_devnet(
        anvil_accounts[0],
        recipients=anvil_accounts[1:3],
        amount_atomic=FUNDS_ATOMIC,
        anvil_args=["--prune-history"],
    ) as (node, w3, tokens):
        yield PrivateChain(node=node, w3=w3, tokens=tokens, accounts=anvil_accounts)


@pytest.fixture
async def router(
    aiohttp_client: Any, pruned_chain: PrivateChain, simulator: Simulators, database_url: str
) -> AsyncIterator[RunningRouter]:
    wallet: LocalAccount = Account.create()
    await pruned_chain.rpc("anvil_setBalance", [wallet.address, hex(WALLET_GAS_WEI)])
    running = await recon_router(aiohttp_client, pruned_chain, wallet, simulator, database_url)
    try:
        yield running
    finally:
        await running.w3.provider.disconnect()


async def test_unbooked_gas_is_found_without_past_state(
    router: RunningRouter, pruned_chain: PrivateChain
) -> None:
    start_block = await pruned_chain.w3.eth.block_number + 1
    past = await pruned_chain.w3.provider.make_request(
        "eth_getTransactionCount", [router.settlement_wallet, "0x1"]
    )
    assert "error" in past, "the node must refuse reads at past blocks for this test to mean anything"
    await pay_for_credit(router, router.payers[0], max_tokens=32)
    await pay_for_credit(router, router.payers[1], max_tokens=32)
    books = Books(
        chain=pruned_chain,
        wallet=router.settlement_account,
        engine=router.app[DB_ENGINE],
        start_block=start_block,
    )
    honest = await books.reconcile(from_block=start_block)
    assert honest.clean, honest.breaks
    assert (honest.gas.transactions, honest.gas.chain_gas_wei == honest.gas.booked_gas_wei) == (2, True)

    planted = await _send_transfer(
        pruned_chain,
        router.settlement_account,
        pruned_chain.tokens.usdc.address,
        router.settlement_wallet,
        1,
        priority_wei=10**9,
    )
    await pruned_chain.w3.eth.wait_for_transaction_receipt(HexBytes(planted), timeout=20)
    report = await books.reconcile(from_block=start_block)
    assert kinds(report) == ["missing_in_ledger"]
    assert report.breaks[0].external_ref == f"{router.settings.network}:{planted}:gas".lower()
    assert report.breaks[0].account == chart.native_cash(router.settings.network, router.settlement_wallet)
