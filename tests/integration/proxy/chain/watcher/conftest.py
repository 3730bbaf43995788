"""Fixtures for the watcher's tests: a private Anvil per module (so snapshots, reverts and transfers from
the settlement wallet never disturb the session chain other tests share) and a migrated database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import AsyncWeb3

from ledger import Ledger, create_ledger_engine, migrate
from proxy.chart_accounts import ChartAccounts
from proxy.db.migrate import migrate_proxy
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetTokens
from tests.fixtures.chain import private_devnet

PRIVATE_FUNDS_ATOMIC = 1_000 * 10**6
RECEIPT_TIMEOUT_S = 20.0
_TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")


@dataclass
class PrivateChain:
    node: AnvilNode
    w3: AsyncWeb3[Any]
    tokens: DevnetTokens
    accounts: list[LocalAccount]

    @property
    def wallet(self) -> LocalAccount:
        """Account 0: deployer and settlement wallet, funded with tokens too."""
        return self.accounts[0]

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        response = await self.w3.provider.make_request(method, params or [])
        assert "error" not in response, response
        return response["result"]

    async def transfer(
        self, sender: LocalAccount, token: str, to: str, amount_atomic: int
    ) -> tuple[str, int]:
        """A plain ERC-20 transfer from `sender`, mined; returns (tx hash, block number)."""
        data = _TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, amount_atomic])
        block = await self.w3.eth.get_block("latest")
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.node.chain_id,
            "to": token,
            "value": 0,
            "data": data,
            "gas": 100_000,
            "nonce": await self.w3.eth.get_transaction_count(sender.address, "pending"),
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9,
        }
        tx_hash = await self.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        assert receipt["status"] == 1
        return HexBytes(tx_hash).to_0x_hex().lower(), int(receipt["blockNumber"])


@pytest.fixture(scope="module")
async def private_chain(anvil_accounts: list[LocalAccount]) -> AsyncIterator[PrivateChain]:
    async with private_devnet(
        anvil_accounts[0],
        recipients=anvil_accounts[:4],
        amount_atomic=PRIVATE_FUNDS_ATOMIC,
    ) as (node, w3, tokens):
        yield PrivateChain(node=node, w3=w3, tokens=tokens, accounts=anvil_accounts)


@contextlib.asynccontextmanager
async def migrated_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `database_url` with the ledger's and the proxy's schemas, disposed on exit."""
    engine = create_ledger_engine(database_url)
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def watcher_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A fresh SQLite database with the ledger's and the proxy's schemas."""
    async with migrated_engine(sqlite_url) as engine:
        yield engine


@pytest.fixture
def chart_accounts(watcher_engine: AsyncEngine) -> ChartAccounts:
    return ChartAccounts(Ledger(watcher_engine))
