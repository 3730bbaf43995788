"""Settlement failures and reconciliation breaks raise alerts (issue 12 item 4).

Goal: a settlement that reverts on chain (the payer moved its funds between verification and mining) raises
one `settlement_failed` alert naming the intent, the reason and the reverted transaction; a reconciliation
run that finds a break (native coin spent from the settlement wallet that nobody booked) raises one
`reconciliation_break` alert naming the run and the break. Both are delivered signed to a real receiver.

Method: the real app on the module's private Anvil, settling into a fresh wallet (the fixtures and moves
of test_in_flight_and_gas.py), with a webhook endpoint configured; detectors are evaluated by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from proxy.api.app_keys import ALERT_DETECTORS, ALERTS
from proxy.devnet.simulator import Simulators
from proxy.observability.alerts import evaluate_all
from proxy.settings import AlertEndpointSettings, AlertsSettings
from tests.e2e.accounts.helpers import pay_for_credit
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter
from tests.fixtures.webhook_receiver import WebhookReceiver, new_webhook_secret, webhook_receiver
from tests.integration.proxy.chain.reconcile.conftest import recon_router
from tests.integration.proxy.chain.reconcile.test_in_flight_and_gas import (
    _books,
    _funded_payer,
    _has_pending,
    _offer,
    _pay,
    _send_transfer,
    _until,
    manual_mining,
)
from tests.integration.proxy.chain.watcher.conftest import PrivateChain

pytestmark = pytest.mark.anvil
DETECTOR_TIMEOUT_S = 30.0


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver(new_webhook_secret()) as running:
        yield running


@pytest.fixture
async def router(
    aiohttp_client: Any,
    recon_chain: PrivateChain,
    wallet: LocalAccount,
    simulator: Simulators,
    database_url: str,
    receiver: WebhookReceiver,
) -> AsyncIterator[RunningRouter]:
    endpoint = AlertEndpointSettings(url=receiver.url, secret=receiver.secret, name="ops")
    alerts = AlertsSettings(endpoints=(endpoint,), evaluate_interval_s=3_600)
    running = await recon_router(aiohttp_client, recon_chain, wallet, simulator, database_url, alerts=alerts)
    try:
        yield running
    finally:
        await running.w3.provider.disconnect()


async def _evaluate(router: RunningRouter) -> list[Any]:
    detectors = router.app[ALERT_DETECTORS]
    return await evaluate_all(detectors, timeout_s=DETECTOR_TIMEOUT_S)


async def test_a_reverted_settlement_raises_one_alert(
    router: RunningRouter, recon_chain: PrivateChain, receiver: WebhookReceiver
) -> None:
    offer = await _offer(router)
    quote_atomic = int(offer["accepts"][0]["amount"])
    payer = await _funded_payer(recon_chain, usdc_atomic=quote_atomic)
    assert await _evaluate(router) == []
    async with manual_mining(recon_chain):
        paying = asyncio.create_task(_pay(router, payer, offer))
        await _until(lambda: _has_pending(recon_chain, 1), "the settlement is in the mempool")
        sink = recon_chain.accounts[2].address
        await _send_transfer(
            recon_chain, payer, recon_chain.tokens.usdc.address, sink, quote_atomic, priority_wei=50 * 10**9
        )
        await recon_chain.rpc("evm_mine")
        response = await paying
    assert decode_b64_json(response.headers["PAYMENT-REQUIRED"])["error"] == "transaction_failed"

    (raised,) = await _evaluate(router)
    assert raised.created
    assert [(alert.id, alert.created) for alert in await _evaluate(router)] == [(raised.id, False)]
    record = await router.app[ALERTS].get(raised.id)
    assert record is not None
    assert record.kind == "settlement_failed"
    assert record.payload["payer"].lower() == payer.address.lower()
    assert record.payload["value_atomic"] == quote_atomic
    assert record.payload["reason"] == "transaction_failed"
    receipt = await recon_chain.w3.eth.get_transaction_receipt(record.payload["reverted_tx_hash"])
    assert receipt["status"] == 0
    await receiver.until(lambda: len(receiver.delivered) == 1, "the settlement alert delivered")
    assert receiver.delivered[0].webhook_id == raised.id


async def test_a_reconciliation_break_raises_one_alert(
    router: RunningRouter, recon_chain: PrivateChain, receiver: WebhookReceiver
) -> None:
    start_block = await recon_chain.w3.eth.block_number + 1
    await pay_for_credit(router, router.payers[0], max_tokens=32)
    books = _books(router, recon_chain, start_block)
    assert (await books.reconcile(from_block=start_block)).clean
    assert await _evaluate(router) == []  # a clean run raises nothing

    planted = await _send_transfer(
        recon_chain,
        router.settlement_account,
        recon_chain.tokens.usdc.address,
        router.settlement_wallet,
        1,
        priority_wei=10**9,
    )
    report = await books.reconcile(from_block=start_block)
    assert not report.clean

    (raised,) = await _evaluate(router)
    assert await _evaluate(router) == []
    record = await router.app[ALERTS].get(raised.id)
    assert record is not None
    assert record.kind == "reconciliation_break"
    assert record.payload["breaks_count"] == 1
    (gas_break,) = record.payload["breaks"]
    assert gas_break["kind"] == "missing_in_ledger"
    assert gas_break["external_ref"] == f"{router.settings.network}:{planted}:gas".lower()
    await receiver.until(lambda: len(receiver.delivered) == 1, "the reconciliation alert delivered")
    assert receiver.delivered[0].body["data"]["payload"]["run_id"] == record.payload["run_id"]
