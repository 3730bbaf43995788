"""The x402 `upto` scheme end to end: the official SDK (x402 2.25.0, UptoEvmClientScheme) pays what the
request cost, rounded up to the atomic unit, out of a signed maximum; a request that costs nothing settles
nothing on chain; every booking ties out with the ledger check and with reconciliation against the chain.

Method: a private Anvil for the module (Permit2 and the upto proxy from contracts/ at their canonical
addresses, payers approving Permit2) and a fresh settlement wallet per test, so reconciliation sees exactly
this test's history; the SDK agent runs in .venv-agent as a subprocess against the router's socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger import Ledger, chart
from proxy.api.app_keys import DB_ENGINE
from proxy.devnet.simulator import Simulators
from tests.e2e.official_x402_agent import pay_with_official_sdk
from tests.e2e.payments import decode_b64_json
from tests.e2e.upto_support import CHAT_BODY, NETWORK, assert_books_clean, intent_rows, private_router
from tests.fixtures.chain import private_devnet, token_balance_atomic
from tests.integration.proxy.chain.watcher.conftest import PrivateChain
from x402.permit2 import UPTO_PROXY_ADDRESS

FUNDS_ATOMIC = 1_000 * 10**6
NANO_USD_PER_ATOMIC = 1_000


@pytest.fixture(scope="module")
async def chain(anvil_accounts: list[LocalAccount]) -> AsyncIterator[PrivateChain]:
    payers = anvil_accounts[1:6]
    devnet = private_devnet(anvil_accounts[0], recipients=payers, amount_atomic=FUNDS_ATOMIC)
    async with devnet as (node, w3, tokens):
        yield PrivateChain(node=node, w3=w3, tokens=tokens, accounts=anvil_accounts)


async def test_402_offers_upto_beside_exact(
    aiohttp_client: Any, chain: PrivateChain, simulator: Simulators, database_url: str
) -> None:
    async with private_router(aiohttp_client, chain, simulator, database_url) as (router, wallet):
        response = await router.client.post("/v1/chat/completions", json=CHAT_BODY)
        assert response.status == 402
        offer = await response.json()
        exact = [e for e in offer["accepts"] if e["scheme"] == "exact"]
        upto = [e for e in offer["accepts"] if e["scheme"] == "upto"]
        assert [e["asset"] for e in upto] == [e["asset"] for e in exact]
        for entry_exact, entry_upto in zip(exact, upto, strict=True):
            # The maximum is the same quote; the authorization must outlive the longest request.
            assert entry_upto["amount"] == entry_exact["amount"]
            assert entry_upto["payTo"] == wallet.address
            assert entry_upto["maxTimeoutSeconds"] == router.settings.hold_timeout_s
            assert entry_upto["extra"] == {
                **entry_exact["extra"],
                "assetTransferMethod": "permit2",
                "facilitatorAddress": wallet.address,
            }
        assert decode_b64_json(response.headers["PAYMENT-REQUIRED"]) == offer


async def test_official_sdk_pays_the_cost_rounded_up_and_the_books_tie_out(
    aiohttp_client: Any, chain: PrivateChain, simulator: Simulators, database_url: str
) -> None:
    payer, usdc = chain.accounts[1], chain.tokens.usdc.address
    async with private_router(aiohttp_client, chain, simulator, database_url) as (router, wallet):
        start_block = await chain.w3.eth.block_number + 1
        payer_before = await token_balance_atomic(chain.w3, usdc, payer.address)
        result = await pay_with_official_sdk(
            router, path="/v1/chat/completions", body=CHAT_BODY, payer=payer, asset=usdc, scheme="upto"
        )
        assert result["status"] == 200, result
        assert result["body"]["choices"][0]["message"]["content"]
        headers = {name.lower(): value for name, value in result["headers"].items()}
        cost_nano_usd = int(headers["x-megarouter-cost-nano-usd"])
        quote_nano_usd = int(headers["x-megarouter-quote-nano-usd"])
        due_atomic = -(-cost_nano_usd // NANO_USD_PER_ATOMIC)
        assert 0 < due_atomic < quote_nano_usd // NANO_USD_PER_ATOMIC, "upto pays less than the quote"

        settlement = decode_b64_json(result["payment_response"])
        assert settlement["success"] is True
        assert settlement["amount"] == str(due_atomic)
        assert settlement["payer"] == payer.address
        receipt = await chain.w3.eth.get_transaction_receipt(settlement["transaction"])
        assert (receipt["status"], receipt["to"]) == (1, UPTO_PROXY_ADDRESS)
        # The chain moved exactly the cost rounded up to the atomic unit, and nothing else.
        assert await token_balance_atomic(chain.w3, usdc, payer.address) == payer_before - due_atomic
        assert await token_balance_atomic(chain.w3, usdc, wallet.address) == due_atomic

        ledger = Ledger(router.app[DB_ENGINE])
        credit = await ledger.balance(chart.credit_wallet(payer.address))
        # What the payer keeps is the rounding to the atomic unit, under one atomic unit.
        assert credit.posted == due_atomic * NANO_USD_PER_ATOMIC - cost_nano_usd
        [intent] = await intent_rows(router.app[DB_ENGINE])
        assert (intent["scheme"], intent["status"], intent["value_atomic"]) == ("upto", "booked", due_atomic)
        assert intent["max_atomic"] == -(-quote_nano_usd // NANO_USD_PER_ATOMIC)
        await assert_books_clean(router, wallet, start_block=start_block, upto_settlements=1)


async def test_a_request_that_costs_nothing_settles_nothing(
    aiohttp_client: Any, chain: PrivateChain, simulator: Simulators, database_url: str, tmp_path: Path
) -> None:
    overrides = tmp_path / "free.toml"
    overrides.write_text(
        '[[models]]\nid = "openai/gpt-4o-mini"\ninput_usd_per_mtok = "0"\noutput_usd_per_mtok = "0"\n'
        'cached_input_usd_per_mtok = "0"\n'
    )
    payer, usdc = chain.accounts[2], chain.tokens.usdc.address
    async with private_router(
        aiohttp_client, chain, simulator, database_url, catalog_overrides_path=overrides
    ) as (router, wallet):
        start_block = await chain.w3.eth.block_number + 1
        payer_before = await token_balance_atomic(chain.w3, usdc, payer.address)
        wallet_nonce_before = await chain.w3.eth.get_transaction_count(wallet.address)
        result = await pay_with_official_sdk(
            router, path="/v1/chat/completions", body=CHAT_BODY, payer=payer, asset=usdc, scheme="upto"
        )
        assert result["status"] == 200, result
        settlement = decode_b64_json(result["payment_response"])
        assert (settlement["success"], settlement["amount"], settlement["transaction"]) == (True, "0", "")
        assert await token_balance_atomic(chain.w3, usdc, payer.address) == payer_before
        assert await chain.w3.eth.get_transaction_count(wallet.address) == wallet_nonce_before
        [intent] = await intent_rows(router.app[DB_ENGINE])
        assert (intent["status"], intent["value_atomic"], intent["tx_hash"]) == ("released", 0, None)
        credit = await Ledger(router.app[DB_ENGINE]).balance(chart.credit_wallet(payer.address))
        assert credit.posted == 0
        await assert_books_clean(router, wallet, start_block=start_block)
        assert intent["network"] == NETWORK
