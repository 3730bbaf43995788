"""Anvil starts from the pinned npm package and answers JSON-RPC with our chain id."""

import aiohttp

from proxy.devnet.anvil import ANVIL_CHAIN_ID, AnvilNode


async def test_anvil_answers_chain_id(anvil: AnvilNode) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    async with aiohttp.ClientSession() as session, session.post(anvil.rpc_url, json=body) as response:
        payload = await response.json()
    assert int(payload["result"], 16) == ANVIL_CHAIN_ID
