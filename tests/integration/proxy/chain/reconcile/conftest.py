"""Fixtures for reconciliation tests: a private Anvil for the module and a fresh settlement wallet per test.

The session chain's settlement wallet (account 0) receives every other test's payments, so its balance can
never tie out against one test's ledger. Here each test settles into its own new wallet on a chain of its
module, so the wallet's whole on-chain history is exactly what that test did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger import Ledger, unix_ms_now
from proxy.app import create_app
from proxy.chain.reconcile import ReconcileReport, ReconcileScope, reconcile_settlement_wallet
from proxy.chain.watcher import ChainWatcher, PollReport, WatchedToken, WatcherSettings
from proxy.chart_accounts import ChartAccounts
from proxy.devnet.simulator import Simulators
from tests.fixtures.app import RunningRouter, router_settings
from tests.fixtures.chain import private_devnet
from tests.integration.proxy.chain.watcher.conftest import PrivateChain, migrated_engine

NETWORK = "eip155:31337"
FUNDS_ATOMIC = 1_000 * 10**6
WALLET_GAS_WEI = 10**20


@pytest.fixture(scope="module")
async def recon_chain(anvil_accounts: list[LocalAccount]) -> AsyncIterator[PrivateChain]:
    async with private_devnet(
        anvil_accounts[0],
        recipients=anvil_accounts[1:6],
        amount_atomic=FUNDS_ATOMIC,
    ) as (node, w3, tokens):
        yield PrivateChain(node=node, w3=w3, tokens=tokens, accounts=anvil_accounts)


@pytest.fixture
async def wallet(recon_chain: PrivateChain) -> LocalAccount:
    """A new settlement wallet with ETH for gas (withdrawals send from it) and no tokens."""
    account: LocalAccount = Account.create()
    await recon_chain.rpc("anvil_setBalance", [account.address, hex(WALLET_GAS_WEI)])
    return account


@pytest.fixture
async def recon_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(database_url) as engine:
        yield engine


@dataclass
class Books:
    """One test's chain, wallet and ledger, with the moves an honest history is made of."""

    chain: PrivateChain
    wallet: LocalAccount
    engine: AsyncEngine
    start_block: int

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.engine)

    @property
    def accounts(self) -> ChartAccounts:
        return ChartAccounts(self.ledger)

    def tokens(self) -> tuple[WatchedToken, ...]:
        return tuple(WatchedToken(address=t.address, decimals=t.decimals) for t in self.chain.tokens.all())

    def scope(self, **overrides: int) -> ReconcileScope:
        fields = {"confirmations": 0} | overrides
        return ReconcileScope(
            network=NETWORK, settlement_wallet=self.wallet.address, tokens=self.tokens(), **fields
        )

    async def pay_in(self, sender_index: int, amount_atomic: int, *, usdt: bool = False) -> str:
        """A plain transfer to the wallet; returns its tx hash (nobody books it yet)."""
        token = self.chain.tokens.usdt if usdt else self.chain.tokens.usdc
        tx_hash, _ = await self.chain.transfer(
            self.chain.accounts[sender_index], token.address, self.wallet.address, amount_atomic
        )
        return tx_hash

    async def watch(self) -> PollReport:
        """The chain watcher books what reached the wallet since the test began."""
        settings = WatcherSettings(
            network=NETWORK,
            settlement_wallet=self.wallet.address,
            tokens=self.tokens(),
            confirmations=0,
            start_block=self.start_block,
        )
        watcher = ChainWatcher(self.chain.w3, settings=settings, accounts=self.accounts, engine=self.engine)
        return await watcher.poll_once()

    async def reconcile(self, *, now_unix_ms: int | None = None, **kwargs: int) -> ReconcileReport:
        scope_fields = {k: v for k, v in kwargs.items() if k in ReconcileScope.model_fields}
        range_fields = {k: v for k, v in kwargs.items() if k not in scope_fields}
        return await reconcile_settlement_wallet(
            self.chain.w3,
            self.ledger,
            self.scope(**scope_fields),
            now_unix_ms=now_unix_ms or unix_ms_now(),
            **range_fields,
        )


@pytest.fixture
async def books(recon_chain: PrivateChain, wallet: LocalAccount, recon_engine: AsyncEngine) -> Books:
    return Books(
        chain=recon_chain,
        wallet=wallet,
        engine=recon_engine,
        start_block=await recon_chain.w3.eth.block_number + 1,
    )


def kinds(report: ReconcileReport) -> list[str]:
    return sorted(b.kind.value for b in report.breaks)


async def recon_router(
    aiohttp_client: Any,
    chain: PrivateChain,
    wallet: LocalAccount,
    simulator: Simulators,
    database_url: str,
    **overrides: Any,
) -> RunningRouter:
    """The real app on the module's chain, settling into `wallet`; the caller disconnects `router.w3`."""
    settings = router_settings(
        anvil=chain.node,
        tokens=chain.tokens,
        settlement_key=wallet.key.hex(),
        simulator_base_url=simulator.base_url,
        database_url=database_url,
        **overrides,
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    return RunningRouter(
        client=client,
        app=app,
        settings=settings,
        tokens=chain.tokens,
        w3=AsyncWeb3(AsyncHTTPProvider(chain.node.rpc_url)),
        payers=chain.accounts[1:],
        settlement_account=wallet,
        simulator=simulator,
    )
