"""Settlement on Anvil: a valid payment moves exactly `value`; concurrent settlements get distinct tx
nonces; a used authorization is refused before any send; each crash-recovery path ends in one transfer.

Method: real test tokens from the `tokens` fixture, payers are Anvil accounts 1..9, account 0 settles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetToken, DevnetTokens
from x402.chain import TokenReader
from x402.client import sign_payment
from x402.errors import NonceAlreadyUsed
from x402.models import PaymentRequirements
from x402.requirements import AcceptedAsset, build_requirements
from x402.settle import SettlementResult, Settler, SignedSettlement
from x402.verify import VerifiedPayment, verify_payment_offchain, verify_payment_onchain

pytestmark = pytest.mark.anvil

QUOTE_NANO_USD = 2_500_000  # 2,500 atomic units.
Web3Client = AsyncWeb3[AsyncHTTPProvider]


class SimulatedCrash(Exception):
    """Raised from before_send: the intent is stored, the process dies before the send."""


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


def offer(token: DevnetToken, pay_to: str, *, quote_nano_usd: int = QUOTE_NANO_USD) -> PaymentRequirements:
    asset = AcceptedAsset(address=token.address, name=token.name, version=token.version)
    [requirements] = build_requirements(
        quote_nano_usd=quote_nano_usd, chain_id=31337, assets=[asset], pay_to=pay_to, max_timeout_s=120
    )
    return requirements


async def verified(w3: Web3Client, token: DevnetToken, payer: LocalAccount, pay_to: str) -> VerifiedPayment:
    requirements = offer(token, pay_to)
    now_unix_s = int(time.time())
    payload = sign_payment(requirements, payer, now_unix_s=now_unix_s)
    payment = verify_payment_offchain(payload, [requirements], now_unix_s)
    await verify_payment_onchain(TokenReader(w3), payment)
    return payment


async def test_valid_settlement_moves_exactly_value(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    reader = TokenReader(w3)
    payer, payee = anvil_accounts[1], anvil_accounts[0].address
    payment = await verified(w3, tokens.usdc, payer, payee)
    payer_before = await reader.balance_atomic(tokens.usdc.address, payer.address)
    payee_before = await reader.balance_atomic(tokens.usdc.address, payee)
    stored: list[SignedSettlement] = []

    async def before_send(signed: SignedSettlement) -> None:
        stored.append(signed)

    result = await settler.settle(payment, before_send=before_send)
    assert [s.tx_hash for s in stored] == [result.tx_hash]
    assert result.amount_atomic == 2_500
    assert result.transfer_log_index is not None
    assert await reader.balance_atomic(tokens.usdc.address, payer.address) == payer_before - 2_500
    assert await reader.balance_atomic(tokens.usdc.address, payee) == payee_before + 2_500
    assert await reader.authorization_used(tokens.usdc.address, payer.address, payment.authorization.nonce)


async def test_twenty_concurrent_settlements_use_distinct_nonces(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    payee = anvil_accounts[0].address
    payments = [
        await verified(w3, token, anvil_accounts[2 + i % 4], payee)
        for i, token in enumerate([tokens.usdc, tokens.usdt] * 10)
    ]
    signed: list[SignedSettlement] = []

    async def before_send(item: SignedSettlement) -> None:
        signed.append(item)

    results = await asyncio.gather(*(settler.settle(p, before_send=before_send) for p in payments))
    assert len({r.tx_hash for r in results}) == 20
    assert len({s.tx_nonce for s in signed}) == 20
    assert all(isinstance(r, SettlementResult) for r in results)


async def test_replayed_authorization_is_refused_before_sending(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    payment = await verified(w3, tokens.usdt, anvil_accounts[6], anvil_accounts[0].address)
    await settler.settle(payment)
    tx_count_before = await w3.eth.get_transaction_count(anvil_accounts[0].address)
    sent: list[SignedSettlement] = []

    async def before_send(item: SignedSettlement) -> None:
        sent.append(item)

    with pytest.raises(NonceAlreadyUsed) as raised:
        await settler.settle(payment, before_send=before_send)
    assert raised.value.reason == "invalid_exact_evm_nonce_already_used"
    assert sent == []
    assert await w3.eth.get_transaction_count(anvil_accounts[0].address) == tx_count_before
    with pytest.raises(NonceAlreadyUsed):
        await verify_payment_onchain(TokenReader(w3), payment)


async def _crash_before_send(settler: Settler, payment: VerifiedPayment) -> SignedSettlement:
    stored: list[SignedSettlement] = []

    async def before_send(item: SignedSettlement) -> None:
        stored.append(item)
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await settler.settle(payment, before_send=before_send)
    [signed] = stored
    return signed


async def test_recover_returns_receipt_of_mined_settlement(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    payment = await verified(w3, tokens.usdc, anvil_accounts[7], anvil_accounts[0].address)
    stored: list[SignedSettlement] = []

    async def before_send(item: SignedSettlement) -> None:
        stored.append(item)

    result = await settler.settle(payment, before_send=before_send)
    recovered = await Settler(w3, anvil_accounts[0]).recover(payment, stored[0])
    assert recovered.recovered_by == "receipt"
    assert recovered.result == result


async def test_recover_rebroadcasts_unsent_settlement(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    reader = TokenReader(w3)
    payer = anvil_accounts[7]
    payment = await verified(w3, tokens.usdc, payer, anvil_accounts[0].address)
    balance_before = await reader.balance_atomic(tokens.usdc.address, payer.address)
    signed = await _crash_before_send(settler, payment)
    recovered = await settler.recover(payment, signed)
    assert recovered.recovered_by == "rebroadcast"
    assert recovered.result.tx_hash == signed.tx_hash
    assert await reader.balance_atomic(tokens.usdc.address, payer.address) == balance_before - 2_500
    # Recovery again finds the receipt and sends nothing.
    again = await settler.recover(payment, signed)
    assert again.recovered_by == "receipt"
    assert await reader.balance_atomic(tokens.usdc.address, payer.address) == balance_before - 2_500


async def test_recover_discovers_settlement_sent_by_someone_else(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    payment = await verified(w3, tokens.usdt, anvil_accounts[8], anvil_accounts[0].address)
    signed = await _crash_before_send(settler, payment)
    # Anyone may submit an EIP-3009 authorization: here account 9 relays it first.
    relayed = await Settler(w3, anvil_accounts[9]).settle(payment)
    recovered = await settler.recover(payment, signed)
    assert recovered.recovered_by == "discovered"
    assert recovered.result.tx_hash == relayed.tx_hash
    assert recovered.result.tx_hash != signed.tx_hash


async def test_recover_resettles_when_tx_nonce_was_reused(
    w3: Web3Client, settler: Settler, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    reader = TokenReader(w3)
    payer = anvil_accounts[8]
    payment = await verified(w3, tokens.usdc, payer, anvil_accounts[0].address)
    signed = await _crash_before_send(settler, payment)
    # Another settlement takes the same tx nonce, so the stored transaction can never be mined.
    other_payment = await verified(w3, tokens.usdc, anvil_accounts[9], anvil_accounts[0].address)
    other = await settler.settle(other_payment)
    assert other.tx_hash != signed.tx_hash
    balance_before = await reader.balance_atomic(tokens.usdc.address, payer.address)
    recovered = await settler.recover(payment, signed)
    assert recovered.recovered_by == "resettled"
    assert await reader.balance_atomic(tokens.usdc.address, payer.address) == balance_before - 2_500
