"""reconcile_from_chain observes every token movement in and out of the settlement wallet over a range,
keyed like the ledger's external_ref, the wallet's balances at the range's end, and our transactions'
receipts; batch size does not change the answer.

Method: a private Anvil; one deposit in, one withdrawal out (Settler.transfer), in a range of our own.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import chart
from proxy.chain.reconcile import load_settlement_tx_hashes, reconcile_from_chain
from proxy.chain.transfers import transfer_external_ref
from proxy.chain.watcher import WatchedToken
from tests.integration.proxy.chain.watcher.conftest import PrivateChain
from x402.chain import TokenReader
from x402.settle import Settler

pytestmark = pytest.mark.anvil

NETWORK = "eip155:31337"


async def test_movements_balances_and_receipts_of_a_range(private_chain: PrivateChain) -> None:
    chain, wallet = private_chain, private_chain.wallet.address
    tokens = [WatchedToken(address=t.address, decimals=t.decimals) for t in chain.tokens.all()]
    from_block = await chain.w3.eth.block_number + 1
    deposit_hash, _ = await chain.transfer(chain.accounts[1], chain.tokens.usdc.address, wallet, 700)
    withdrawal = await Settler(chain.w3, chain.wallet).transfer(
        chain.tokens.usdt.address, chain.accounts[5].address, 300
    )
    missing_hash = "0x" + "ab" * 32

    observed = await reconcile_from_chain(
        chain.w3,
        network=NETWORK,
        settlement_wallet=wallet,
        tokens=tokens,
        from_block=from_block,
        settlement_tx_hashes=[withdrawal.tx_hash, missing_hash],
    )
    assert observed.to_block == await chain.w3.eth.block_number
    assert [(m.direction, m.amount_atomic, m.amount_nano_usd) for m in observed.movements] == [
        ("in", 700, 700_000),
        ("out", 300, 300_000),
    ]
    deposit, out = observed.movements
    assert deposit.external_ref == transfer_external_ref(NETWORK, deposit_hash, 0)
    assert deposit.account == chart.cash(NETWORK, chain.tokens.usdc.address, wallet)
    assert deposit.counterparty == chain.accounts[1].address.lower()
    assert out.tx_hash == withdrawal.tx_hash.lower()
    assert out.counterparty == chain.accounts[5].address.lower()
    assert out.account == chart.cash(NETWORK, chain.tokens.usdt.address, wallet)
    reader = TokenReader(chain.w3)
    for balance, token in zip(observed.balances, chain.tokens.all(), strict=True):
        assert balance.balance_atomic == await reader.balance_atomic(token.address, wallet)
        assert balance.balance_nano_usd == balance.balance_atomic * 1_000
    receipts = {r.tx_hash: r for r in observed.receipts}
    assert receipts[missing_hash].found is False
    mined = receipts[withdrawal.tx_hash.lower()]
    assert (mined.status, mined.gas_used) == (1, withdrawal.gas_used)
    assert mined.gas_cost_wei == withdrawal.gas_used * withdrawal.effective_gas_price_wei

    one_block_batches = await reconcile_from_chain(
        chain.w3,
        network=NETWORK,
        settlement_wallet=wallet,
        tokens=tokens,
        from_block=from_block,
        to_block=observed.to_block,
        blocks_per_batch_max=1,
    )
    assert one_block_batches.movements == observed.movements


async def test_settlement_hashes_come_from_the_intents_table(watcher_engine: AsyncEngine) -> None:
    # An empty intents table: nothing to look up (the x402 e2e path fills it; see test_watcher_with_x402).
    assert await load_settlement_tx_hashes(watcher_engine, network=NETWORK, from_block=0, to_block=10) == []
