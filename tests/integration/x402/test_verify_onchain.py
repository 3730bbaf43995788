"""On-chain verification against Anvil: each chain-side refusal carries its reason code.

Method: payloads that pass the off-chain checks (the offer itself is wrong or the payer is poor), then
`verify_payment_onchain` through a TokenReader on the session's Anvil.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetTokens
from x402.chain import TokenReader
from x402.client import sign_payment
from x402.errors import X402Error
from x402.requirements import AcceptedAsset, build_requirements
from x402.verify import verify_payment_offchain, verify_payment_onchain

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
async def reader(anvil: AnvilNode) -> AsyncIterator[TokenReader]:
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        yield TokenReader(w3)
    finally:
        await w3.provider.disconnect()


async def onchain_reason(
    reader: TokenReader, payer: LocalAccount, asset: AcceptedAsset, *, chain_id: int = 31337
) -> str:
    [requirements] = build_requirements(
        quote_nano_usd=1_000_000, chain_id=chain_id, assets=[asset], pay_to=payer.address, max_timeout_s=60
    )
    now_unix_s = int(time.time())
    payment = verify_payment_offchain(
        sign_payment(requirements, payer, now_unix_s=now_unix_s), [requirements], now_unix_s
    )
    with pytest.raises(X402Error) as raised:
        await verify_payment_onchain(reader, payment)
    return raised.value.reason


def usdc(tokens: DevnetTokens, *, name: str = "USD Coin", version: str = "2") -> AcceptedAsset:
    return AcceptedAsset(address=tokens.usdc.address, name=name, version=version)


async def test_insufficient_balance(reader: TokenReader, tokens: DevnetTokens) -> None:
    pauper = Account.create()
    assert await onchain_reason(reader, pauper, usdc(tokens)) == "insufficient_funds"


async def test_token_name_mismatch(
    reader: TokenReader, tokens: DevnetTokens, anvil_accounts: list[LocalAccount]
) -> None:
    asset = usdc(tokens, name="USDC")
    assert await onchain_reason(reader, anvil_accounts[1], asset) == "invalid_exact_evm_token_name_mismatch"


async def test_token_version_mismatch(
    reader: TokenReader, tokens: DevnetTokens, anvil_accounts: list[LocalAccount]
) -> None:
    asset = usdc(tokens, version="1")
    assert (
        await onchain_reason(reader, anvil_accounts[1], asset) == "invalid_exact_evm_token_version_mismatch"
    )


async def test_rpc_on_other_chain(
    reader: TokenReader, tokens: DevnetTokens, anvil_accounts: list[LocalAccount]
) -> None:
    assert await onchain_reason(reader, anvil_accounts[1], usdc(tokens), chain_id=8453) == "network_mismatch"


async def test_asset_without_code(reader: TokenReader, anvil_accounts: list[LocalAccount]) -> None:
    nowhere = AcceptedAsset(address="0x" + "77" * 20, name="USD Coin", version="2")
    assert await onchain_reason(reader, anvil_accounts[1], nowhere) == "asset_not_deployed_contract"
