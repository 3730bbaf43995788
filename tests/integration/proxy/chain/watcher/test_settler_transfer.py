"""Settler.transfer on Anvil: moves exactly the amount, refuses more than the wallet holds (counting
transfers still in flight), shares transaction nonces with settlements, and recovers after a crash without
ever landing two transfers.

Method: a private Anvil (tests/integration/proxy/chain/watcher/conftest.py); account 0 settles.
"""

from __future__ import annotations

import asyncio

import pytest
from eth_abi.abi import encode as abi_encode
from hexbytes import HexBytes

from tests.integration.proxy.chain.watcher.conftest import PrivateChain
from x402.chain import TokenReader
from x402.errors import InsufficientFunds, TransactionFailed
from x402.settle import TRANSFER_SELECTOR, Settler, SignedSettlement

pytestmark = pytest.mark.anvil


class SimulatedCrash(Exception):
    """Raised from before_send: the signed transfer is stored, the process dies before sending."""


async def _balance(chain: PrivateChain, owner: str) -> int:
    return await TokenReader(chain.w3).balance_atomic(chain.tokens.usdc.address, owner)


async def _crash_before_send(
    settler: Settler, chain: PrivateChain, to: str, amount_atomic: int
) -> SignedSettlement:
    stored: list[SignedSettlement] = []

    async def before_send(signed: SignedSettlement) -> None:
        stored.append(signed)
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await settler.transfer(chain.tokens.usdc.address, to, amount_atomic, before_send=before_send)
    [signed] = stored
    return signed


async def test_transfer_moves_exactly_the_amount(private_chain: PrivateChain) -> None:
    chain, to = private_chain, private_chain.accounts[5].address
    settler = Settler(chain.w3, chain.wallet, receipt_timeout_s=20.0)
    stored: list[SignedSettlement] = []

    async def before_send(signed: SignedSettlement) -> None:
        stored.append(signed)

    wallet_before, to_before = await _balance(chain, chain.wallet.address), await _balance(chain, to)
    result = await settler.transfer(chain.tokens.usdc.address, to, 1_234_567, before_send=before_send)
    assert [s.tx_hash for s in stored] == [result.tx_hash]
    assert result.amount_atomic == 1_234_567
    assert result.network == "eip155:31337"
    assert result.transfer_log_index is not None
    assert await _balance(chain, chain.wallet.address) == wallet_before - 1_234_567
    assert await _balance(chain, to) == to_before + 1_234_567


async def test_transfer_refuses_more_than_the_balance_before_signing(private_chain: PrivateChain) -> None:
    chain = private_chain
    settler = Settler(chain.w3, chain.wallet)
    nonce_before = await chain.w3.eth.get_transaction_count(chain.wallet.address)
    too_much = await _balance(chain, chain.wallet.address) + 1
    with pytest.raises(InsufficientFunds):
        await settler.transfer(chain.tokens.usdc.address, chain.accounts[5].address, too_much)
    assert await chain.w3.eth.get_transaction_count(chain.wallet.address) == nonce_before


async def test_concurrent_transfers_never_overspend_and_use_distinct_nonces(
    private_chain: PrivateChain,
) -> None:
    chain = private_chain
    settler = Settler(chain.w3, chain.wallet, receipt_timeout_s=20.0)
    balance = await _balance(chain, chain.wallet.address)
    # Five transfers of 30% each: exactly three fit, whatever the interleaving.
    share = balance * 3 // 10
    signed: list[SignedSettlement] = []

    async def before_send(item: SignedSettlement) -> None:
        signed.append(item)

    outcomes = await asyncio.gather(
        *(
            settler.transfer(
                chain.tokens.usdc.address, chain.accounts[6].address, share, before_send=before_send
            )
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    mined = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, InsufficientFunds)]
    assert (len(mined), len(refused)) == (3, 2)
    assert len({s.tx_nonce for s in signed}) == 3
    assert await _balance(chain, chain.wallet.address) == balance - 3 * share


async def test_recover_rebroadcasts_an_unsent_transfer_once(private_chain: PrivateChain) -> None:
    chain, to = private_chain, private_chain.accounts[7].address
    settler = Settler(chain.w3, chain.wallet, receipt_timeout_s=20.0)
    to_before = await _balance(chain, to)
    signed = await _crash_before_send(settler, chain, to, 1_000)
    recovered = await Settler(chain.w3, chain.wallet).recover_transfer(
        chain.tokens.usdc.address, to, 1_000, signed
    )
    assert recovered.recovered_by == "rebroadcast"
    assert recovered.result.tx_hash == signed.tx_hash
    again = await Settler(chain.w3, chain.wallet).recover_transfer(
        chain.tokens.usdc.address, to, 1_000, signed
    )
    assert again.recovered_by == "receipt"
    assert await _balance(chain, to) == to_before + 1_000


async def test_recover_resends_when_the_nonce_went_to_another_transaction(
    private_chain: PrivateChain,
) -> None:
    chain, to = private_chain, private_chain.accounts[8].address
    settler = Settler(chain.w3, chain.wallet, receipt_timeout_s=20.0)
    to_before = await _balance(chain, to)
    signed = await _crash_before_send(settler, chain, to, 2_000)
    other = await settler.transfer(chain.tokens.usdt.address, to, 5)  # takes the stored tx's nonce
    assert other.tx_hash != signed.tx_hash
    recovered = await settler.recover_transfer(chain.tokens.usdc.address, to, 2_000, signed)
    assert recovered.recovered_by == "resent"
    assert recovered.result.tx_hash != signed.tx_hash
    assert await _balance(chain, to) == to_before + 2_000


async def test_recover_of_a_reverted_transfer_raises(private_chain: PrivateChain) -> None:
    chain, to = private_chain, private_chain.accounts[5].address
    poor = chain.accounts[9]  # holds no private-chain tokens, so its transfer reverts on chain
    block = await chain.w3.eth.get_block("latest")
    nonce = await chain.w3.eth.get_transaction_count(poor.address, "pending")
    signed_tx = poor.sign_transaction(
        {
            "type": 2,
            "chainId": chain.node.chain_id,
            "to": chain.tokens.usdc.address,
            "value": 0,
            "gas": 100_000,
            "data": TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, 7]),
            "nonce": nonce,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9,
        }
    )
    signed = SignedSettlement(
        raw_tx=bytes(signed_tx.raw_transaction),
        tx_hash=HexBytes(signed_tx.hash).to_0x_hex(),
        tx_nonce=nonce,
        from_block=int(block["number"]),
    )
    await chain.w3.eth.send_raw_transaction(signed.raw_tx)
    receipt = await chain.w3.eth.wait_for_transaction_receipt(HexBytes(signed.tx_hash), timeout=20.0)
    assert receipt["status"] == 0
    with pytest.raises(TransactionFailed):
        await Settler(chain.w3, poor).recover_transfer(chain.tokens.usdc.address, to, 7, signed)
