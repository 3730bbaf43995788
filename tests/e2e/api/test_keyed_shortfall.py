"""A keyed request whose quote exceeds the wallet's credit gets a 402 offering exactly the shortfall — never
an overdraft — and is served once the shortfall is paid by x402 on the same request. The 402's body is an
OpenAI-style error (what the openai SDK shows its user; Anthropic's shape on /v1/messages), the x402 offer
rides in the PAYMENT-REQUIRED header.

Method: a key whose wallet holds one micro-dollar of credit asks for a completion; the 402's offer is for
quote − credit (rounded up to the token's unit); paying it with the key still attached is served, and the
ledger shows credit = top-up + shortfall − cost, every hold resolved, and no invariant broken. The official
openai SDK, on every OpenAI-style paid endpoint, raises with the message that says how short and how
to top up.
"""

from __future__ import annotations

import openai
import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from tests.e2e.api.support import funded_key, openai_client
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 200}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_shortfall_is_offered_then_paid_and_served(router: RunningRouter) -> None:
    payer = router.payers[4]
    key = await funded_key(router, payer, amount_usd="0.000001")
    auth = {"Authorization": f"Bearer {key}"}
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    before = await ledger.balance(credit_account)

    refused = await router.client.post("/v1/chat/completions", json=BODY, headers=auth)
    assert refused.status == 402
    error = (await refused.json())["error"]
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "insufficient_credit"
    offer = decode_b64_json(refused.headers["PAYMENT-REQUIRED"])
    assert offer["error"] == "insufficient_credit"
    assert error["message"].startswith("credit 0.000001 USD is short of this request's 0.")
    shortfall_atomic = int(offer["accepts"][0]["amount"])
    assert shortfall_atomic >= 1  # Never zero: something is always owed.
    # Nothing was held or charged by the refusal.
    assert await ledger.balance(credit_account) == before
    assert await ledger.open_holds(credit_account) == []

    header = encode_b64_json(sign_v2_payment(payer, offer))
    served = await router.client.post(
        "/v1/chat/completions", json=BODY, headers={**auth, "PAYMENT-SIGNATURE": header}
    )
    assert served.status == 200, await served.text()
    assert decode_b64_json(served.headers["PAYMENT-RESPONSE"])["success"] is True
    cost_nano_usd = int(served.headers["X-MegaRouter-Cost-Nano-USD"])
    quote_nano_usd = int(served.headers["X-MegaRouter-Quote-Nano-USD"])
    # The shortfall covered exactly what the credit lacked, rounded up to the token's atomic unit.
    assert quote_nano_usd <= before.available + shortfall_atomic * 1_000 < quote_nano_usd + 1_000
    after = await ledger.balance(credit_account)
    assert after.available == before.available + shortfall_atomic * 1_000 - cost_nano_usd
    assert after.pending == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_openai_and_anthropic_callers_read_why(router: RunningRouter) -> None:
    payer = router.payers[5]
    key: str = await funded_key(router, payer, amount_usd="0.000001")
    ledger = router.app[LEDGER]
    before = await ledger.balance(chart.credit_wallet(payer.address))
    async with openai_client(router, key) as client:
        calls = {
            "chat": client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=200
            ),
            "responses": client.responses.create(
                model="openai/gpt-4o-mini", input="Hello", max_output_tokens=200
            ),
            "embeddings": client.embeddings.create(
                model="openai/text-embedding-3-small", input="hello " * 2_000
            ),
        }
        for name, call in calls.items():
            with pytest.raises(openai.APIStatusError) as raised:
                await call
            assert raised.value.status_code == 402, name
            message = str(raised.value)
            assert "is short of this request's" in message, (name, message)
            assert "PAYMENT-REQUIRED" in message, (name, message)
            assert raised.value.code == "insufficient_credit", name
            assert raised.value.type == "insufficient_quota", name
            offer = decode_b64_json(raised.value.response.headers["PAYMENT-REQUIRED"])
            assert offer["accepts"][0]["amount"] != "0", name
    messages = await router.client.post(
        "/v1/messages",
        json={
            "model": "openai/gpt-4o-mini",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "Hi"}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert messages.status == 402
    body = await messages.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "billing_error"
    assert "is short of this request's" in body["error"]["message"]
    assert decode_b64_json(messages.headers["PAYMENT-REQUIRED"])["error"] == "insufficient_credit"
    # Nothing was held or charged by any refusal.
    assert await ledger.balance(chart.credit_wallet(payer.address)) == before
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_unkeyed_agent_keeps_the_x402_body(router: RunningRouter) -> None:
    refused = await router.client.post("/v1/chat/completions", json=BODY)
    assert refused.status == 402
    document = await refused.json()
    assert document["x402Version"] == 2
    assert decode_b64_json(refused.headers["PAYMENT-REQUIRED"]) == document
