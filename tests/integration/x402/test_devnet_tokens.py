"""The devnet fixture deploys both test tokens with the right EIP-712 domain and funds the payers."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

from contracts import load_artifact
from proxy.devnet.anvil import AnvilNode
from proxy.devnet.tokens import DevnetTokens
from tests.fixtures.chain import TEST_PAYER_FUNDS_ATOMIC


async def test_tokens_deployed_and_funded(
    anvil: AnvilNode, anvil_accounts: list[LocalAccount], tokens: DevnetTokens
) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.rpc_url))
    try:
        for token in tokens.all():
            contract = w3.eth.contract(address=token.address, abi=load_artifact(token.artifact_name).abi)
            assert await contract.functions.name().call() == token.name
            assert await contract.functions.version().call() == token.version
            assert await contract.functions.decimals().call() == 6
            # Other tests move tokens between accounts on this shared chain; only minting changes the supply.
            supply_atomic = await contract.functions.totalSupply().call()
            assert supply_atomic == TEST_PAYER_FUNDS_ATOMIC * (len(anvil_accounts) - 1)
    finally:
        await w3.provider.disconnect()
