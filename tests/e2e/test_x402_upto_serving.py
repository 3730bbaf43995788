"""`upto` on the paths besides a plain completion: a stream is settled once it ends, for its real cost; an
inference that no deployment serves settles nothing and gives the whole promise back.

Method: the running app on the session chain; payers sign with x402/upto_client.py; the simulated upstream
fails every request when told to.
"""

from __future__ import annotations

import json

from ledger import Ledger, chart, check_ledger
from proxy.api.app_keys import DB_ENGINE
from proxy.devnet.simulator import ANY_MODEL
from tests.e2e.upto_support import CHAT_BODY, NETWORK, intent_rows, upto_offer, upto_payment_header
from tests.fixtures.app import RunningRouter
from tests.fixtures.chain import token_balance_atomic

STREAM_BODY = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}


async def test_a_stream_is_settled_for_its_cost_when_it_ends(router: RunningRouter) -> None:
    payer, usdc = router.payers[5], router.tokens.usdc.address
    offer = await upto_offer(router, STREAM_BODY, asset=usdc)
    before = await token_balance_atomic(router.w3, usdc, payer.address)
    header = upto_payment_header(payer, offer)
    response = await router.client.post(
        "/v1/chat/completions", json=STREAM_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200
    text = await response.text()
    # The headers left before the cost was known: no PAYMENT-RESPONSE; the settlement follows the stream.
    assert "PAYMENT-RESPONSE" not in response.headers
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] > 0
    [intent] = await intent_rows(router.app[DB_ENGINE])
    assert intent["status"] == "booked"
    assert 0 < intent["value_atomic"] < intent["max_atomic"]
    assert await token_balance_atomic(router.w3, usdc, payer.address) == before - intent["value_atomic"]
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_an_inference_nobody_served_settles_nothing(router: RunningRouter) -> None:
    payer, usdc = router.payers[5], router.tokens.usdc.address
    offer = await upto_offer(router, CHAT_BODY, asset=usdc)
    before = await token_balance_atomic(router.w3, usdc, payer.address)
    for simulator in router.simulator.servers.values():
        simulator.set_fault(ANY_MODEL, error_rate=1.0, error_status=500)
    header = upto_payment_header(payer, offer)
    try:
        response = await router.client.post(
            "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
        )
    finally:
        router.simulator.reset()
    assert response.status >= 500
    assert "PAYMENT-RESPONSE" not in response.headers
    [intent] = await intent_rows(router.app[DB_ENGINE])
    assert (intent["status"], intent["value_atomic"], intent["tx_hash"]) == ("released", 0, None)
    assert await token_balance_atomic(router.w3, usdc, payer.address) == before
    ledger = Ledger(router.app[DB_ENGINE])
    assert (await ledger.balance(chart.credit_wallet(payer.address))).posted == 0
    assert (await ledger.balance(chart.in_transit(NETWORK, usdc))).posted == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []
