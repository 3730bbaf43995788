"""An x402-settled payment is booked once, by the payment path, even when the chain watcher scans its
Transfer; a plain transfer in the same range is booked by the watcher; `chain_watcher_ctx` starts and stops.

Method: the real app (`router` fixture, shared session Anvil and tokens, SQLite and PostgreSQL) takes a paid
request; then a watcher on the app's own resources scans the blocks of that test only. Nothing here reverts
or mines on the shared chain beyond ordinary transactions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from eth_abi.abi import encode as abi_encode
from hexbytes import HexBytes

from ledger import chart
from proxy.api.app_keys import (
    CHAIN_WATCHER,
    CHAIN_WEB3,
    CHART_ACCOUNTS,
    DB_ENGINE,
    ORGANIZATIONS,
    SETTINGS,
    SETTLER,
    WATCHER_SETTINGS,
)
from proxy.app.resources import chain_watcher_ctx
from proxy.chain.reconcile import reconcile_from_chain
from proxy.chain.transfers import transfer_external_ref
from proxy.chain.watcher import ChainWatcher, watcher_settings_from
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

pytestmark = pytest.mark.anvil

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}


async def _pay_one_request(router: RunningRouter) -> str:
    offer_response = await router.client.post("/v1/chat/completions", json=CHAT_BODY)
    assert offer_response.status == 402
    header = encode_b64_json(sign_v2_payment(router.payers[3], await offer_response.json()))
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200, await response.text()
    tx_hash: str = decode_b64_json(response.headers["PAYMENT-RESPONSE"])["transaction"]
    return tx_hash.lower()


async def _plain_transfer(router: RunningRouter, amount_atomic: int) -> str:
    sender = router.payers[4]
    block = await router.w3.eth.get_block("latest")
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": router.settings.chain_id,
        "to": router.tokens.usdc.address,
        "value": 0,
        "gas": 100_000,
        "nonce": await router.w3.eth.get_transaction_count(sender.address, "pending"),
        "data": bytes.fromhex("a9059cbb")
        + abi_encode(["address", "uint256"], [router.settlement_wallet, amount_atomic]),
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + 10**9,
    }
    tx_hash = await router.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = await router.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=20)
    assert receipt["status"] == 1
    return HexBytes(tx_hash).to_0x_hex().lower()


async def test_x402_settlement_is_not_booked_twice_by_the_watcher(router: RunningRouter) -> None:
    start_block = await router.w3.eth.block_number + 1
    x402_tx_hash = await _pay_one_request(router)
    plain_tx_hash = await _plain_transfer(router, 3_000)
    accounts = router.app[CHART_ACCOUNTS]
    transactions_before = await accounts.ledger.transactions()
    [x402_booking] = [t for t in transactions_before if t.code == "x402_deposit"]
    assert x402_booking.external_ref is not None
    assert x402_booking.external_ref.startswith(f"{router.settings.network}:{x402_tx_hash}:")

    settings = watcher_settings_from(
        router.settings, settlement_wallet=router.settlement_wallet, confirmations=0, start_block=start_block
    )
    watcher = ChainWatcher(
        router.app[CHAIN_WEB3], settings=settings, accounts=accounts, engine=router.app[DB_ENGINE]
    )
    report = await watcher.poll_once()
    assert (report.booked, report.skipped_x402, report.already_booked) == (1, 1, 0)
    transactions_after = await accounts.ledger.transactions()
    assert [t.external_ref for t in transactions_after].count(x402_booking.external_ref) == 1
    [plain] = [t for t in transactions_after if t.code == "transfer_deposit"]
    assert plain.external_ref == transfer_external_ref(router.settings.network, plain_tx_hash, 0)
    assert (await accounts.ledger.balance(chart.credit_wallet(router.payers[4].address))).posted >= 3_000_000

    # Reconciliation sees both movements, keyed like their bookings, and the settlement's receipt.
    observed = await reconcile_from_chain(
        router.app[CHAIN_WEB3],
        network=router.settings.network,
        settlement_wallet=router.settlement_wallet,
        tokens=settings.tokens,
        from_block=start_block,
        engine=router.app[DB_ENGINE],
    )
    assert {m.external_ref for m in observed.movements} == {x402_booking.external_ref, plain.external_ref}
    assert [(r.tx_hash, r.status) for r in observed.receipts] == [(x402_tx_hash, 1)]


async def test_chain_watcher_ctx_runs_the_watcher_in_the_background(router: RunningRouter) -> None:
    # A fresh application holding the started router's resources: a started app must not be changed.
    app = web.Application()
    app[SETTINGS] = router.app[SETTINGS]
    app[SETTLER] = router.app[SETTLER]
    app[CHAIN_WEB3] = router.app[CHAIN_WEB3]
    app[CHART_ACCOUNTS] = router.app[CHART_ACCOUNTS]
    app[DB_ENGINE] = router.app[DB_ENGINE]
    app[ORGANIZATIONS] = router.app[ORGANIZATIONS]  # Transfers from an org's deposit wallet credit the org.
    app[WATCHER_SETTINGS] = watcher_settings_from(
        router.settings,
        settlement_wallet=router.settlement_wallet,
        enabled=True,
        confirmations=0,
        start_block=await router.w3.eth.block_number + 1,
        poll_interval_s=0.05,
    )
    tx_hash = await _plain_transfer(router, 4_000)
    external_ref = transfer_external_ref(router.settings.network, tx_hash, 0)
    context = chain_watcher_ctx(app)
    await anext(context)
    try:
        assert isinstance(app[CHAIN_WATCHER], ChainWatcher)
        for _ in range(200):  # at most 10 s
            if await app[CHART_ACCOUNTS].ledger.transaction_by_external_ref(external_ref) is not None:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the background watcher did not book the transfer within 10 s")
    finally:
        with pytest.raises(StopAsyncIteration):
            await anext(context)
