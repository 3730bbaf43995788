"""`upto` on Anvil: Permit2 and the upto proxy from contracts/ at the canonical addresses move exactly the
settled amount (≤ the signed maximum), only for the facilitator the witness names, once per nonce; the
re-check before sending refuses a spent nonce, a withdrawn allowance or balance without sending anything.

Method: the `tokens` fixture places both contracts with anvil_setCode and approves Permit2 for accounts 1..9;
payers sign with x402/upto_client.py; account 0 settles through the Settler.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.devnet.anvil import AnvilNode
from proxy.devnet.permit2 import UINT256_MAX, approve_permit2
from proxy.devnet.tokens import (
    DevnetToken,
    DevnetTokens,
    await_devnet_success,
    send_devnet_transaction,
    transfer,
)
from tests.fixtures.chain import token_balance_atomic
from x402.chain import TokenReader
from x402.errors import (
    Permit2AllowanceRequired,
    Permit2InsufficientBalance,
    Permit2NonceUsed,
    UptoSettlementExceedsAmount,
)
from x402.permit2 import UPTO_PROXY_ADDRESS
from x402.requirements import AcceptedAsset
from x402.settle import Settler
from x402.upto import (
    Permit2Reader,
    VerifiedUptoPayment,
    build_upto_requirements,
    verify_upto_offchain,
    verify_upto_onchain,
)
from x402.upto_client import sign_upto_payment
from x402.upto_settle import settle_upto, upto_settle_calldata

pytestmark = pytest.mark.anvil

MAX_NANO_USD = 2_500_000  # 2,500 atomic units.
Web3Client = AsyncWeb3[AsyncHTTPProvider]


@pytest.fixture(scope="module")
async def w3(anvil: AnvilNode) -> AsyncIterator[Web3Client]:
    client = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        yield client
    finally:
        await client.provider.disconnect()


@pytest.fixture(scope="module")
def settler(w3: Web3Client, anvil_accounts: list[LocalAccount]) -> Settler:
    return Settler(w3, anvil_accounts[0], receipt_timeout_s=20.0)


@pytest.fixture(scope="module")
def reader(w3: Web3Client) -> Permit2Reader:
    return Permit2Reader(TokenReader(w3))


async def verified(
    w3: Web3Client, reader: Permit2Reader, token: DevnetToken, payer: LocalAccount, settler: Settler
) -> VerifiedUptoPayment:
    asset = AcceptedAsset(address=token.address, name=token.name, version=token.version)
    [offer] = build_upto_requirements(
        quote_nano_usd=MAX_NANO_USD,
        chain_id=31337,
        assets=[asset],
        pay_to=settler.address,
        facilitator=settler.address,
        max_timeout_s=900,
    )
    block = await w3.eth.get_block("latest")
    now = max(int(block["timestamp"]), int(time.time()))
    payload = sign_upto_payment(payer, offer, now_unix_s=now)
    payment = verify_upto_offchain(payload, [offer], now, facilitator=settler.address, settle_window_s=300)
    await verify_upto_onchain(reader, payment)
    return payment


async def test_settles_exactly_the_amount_once(
    w3: Web3Client,
    reader: Permit2Reader,
    settler: Settler,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
) -> None:
    payer, token = anvil_accounts[3], tokens.usdc
    payment = await verified(w3, reader, token, payer, settler)
    before = await token_balance_atomic(w3, token.address, payer.address)
    result = await settle_upto(settler, reader, payment, 1_234)
    assert await token_balance_atomic(w3, token.address, payer.address) == before - 1_234
    assert result.amount_atomic == 1_234
    assert result.gas_used > 0
    assert await reader.nonce_used(payer.address, payment.nonce)
    with pytest.raises(Permit2NonceUsed):
        await settle_upto(settler, reader, payment, 1)
    with pytest.raises(UptoSettlementExceedsAmount):
        await settle_upto(settler, reader, payment, payment.max_atomic + 1)


async def test_only_the_witness_facilitator_may_settle_and_never_above_the_maximum(
    w3: Web3Client,
    reader: Permit2Reader,
    settler: Settler,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
) -> None:
    payer, token = anvil_accounts[3], tokens.usdt
    payment = await verified(w3, reader, token, payer, settler)
    intruder = Settler(w3, anvil_accounts[9], receipt_timeout_s=20.0)
    for sender, amount_atomic in ((intruder, 100), (settler, payment.max_atomic + 1)):
        signed = await sender.send_contract_call(
            chain_id=31337, to=UPTO_PROXY_ADDRESS, data=upto_settle_calldata(payment, amount_atomic)
        )
        receipt = await sender.await_receipt(signed.tx_hash, "refused settlement")
        assert receipt["status"] == 0
    assert not await reader.nonce_used(payer.address, payment.nonce)


async def fresh_payer(w3: Web3Client, funder: LocalAccount, token: DevnetToken) -> LocalAccount:
    """A new account with gas money, 10 tokens and Permit2 approved: drained without touching others."""
    payer: LocalAccount = Account.create()
    await w3.provider.make_request("anvil_setBalance", [payer.address, hex(10**18)])
    # From a session payer, not minted: the fixture's total supply is what other tests check.
    await transfer(w3, funder, token=token.address, to=payer.address, amount_atomic=10_000_000)
    await approve_permit2(w3, [payer], tokens=[token.address])
    return payer


async def test_withdrawn_allowance_or_balance_is_refused_before_sending(
    w3: Web3Client,
    reader: Permit2Reader,
    settler: Settler,
    tokens: DevnetTokens,
    anvil_accounts: list[LocalAccount],
) -> None:
    token = tokens.usdc
    payer = await fresh_payer(w3, anvil_accounts[9], token)
    payment = await verified(w3, reader, token, payer, settler)
    nonce_before = await w3.eth.get_transaction_count(AsyncWeb3.to_checksum_address(settler.address))
    await approve_permit2(w3, [payer], tokens=[token.address], amount_atomic=0)
    with pytest.raises(Permit2AllowanceRequired):
        await settle_upto(settler, reader, payment, 10)
    await approve_permit2(w3, [payer], tokens=[token.address], amount_atomic=UINT256_MAX)
    # The payer moves its whole balance away between verification and settlement.
    sink = "0x000000000000000000000000000000000000dEaD"
    balance = await token_balance_atomic(w3, token.address, payer.address)
    data = "0xa9059cbb" + bytes.fromhex(sink[2:]).rjust(32, b"\0").hex() + balance.to_bytes(32, "big").hex()
    nonce = await w3.eth.get_transaction_count(payer.address, "pending")
    tx = {"to": token.address, "data": data, "gas": 80_000}
    await await_devnet_success(w3, await send_devnet_transaction(w3, payer, tx, nonce))
    with pytest.raises(Permit2InsufficientBalance):
        await settle_upto(settler, reader, payment, 10)
    assert await w3.eth.get_transaction_count(AsyncWeb3.to_checksum_address(settler.address)) == nonce_before
