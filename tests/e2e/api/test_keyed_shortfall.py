"""A keyed request whose quote exceeds the wallet's credit gets a 402 offering exactly the shortfall — never
an overdraft — and is served once the shortfall is paid by x402 on the same request.

Method: a key whose wallet holds one micro-dollar of credit asks for a completion; the 402's offer is for
quote − credit (rounded up to the token's unit); paying it with the key still attached is served, and the
ledger shows credit = top-up + shortfall − cost, every hold resolved, and no invariant broken.
"""

from __future__ import annotations

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from tests.e2e.api.support import funded_key
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
    offer = await refused.json()
    assert offer["error"] == "insufficient_credit"
    assert decode_b64_json(refused.headers["PAYMENT-REQUIRED"]) == offer
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
