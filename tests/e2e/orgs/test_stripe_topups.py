"""Stripe Checkout top-ups: a signed `checkout.session.completed` credits the org once however often it is
delivered; a bad signature changes nothing; a refund and a dispute reverse, a won dispute credits again.

Method: the running router (SQLite and PostgreSQL) with a test webhook secret; events are signed locally
with the `stripe` package's own signing helper (no network), posted to /v1/stripe/webhook, and the org's
credit read from the ledger (and the admin API), which `ledger check` then finds clean.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import stripe
from pydantic import SecretStr

from ledger import check_ledger
from proxy.api.app_keys import BILLING, DB_ENGINE
from proxy.governance.stripe_topups import STRIPE_BALANCE
from proxy.settings import OrgSettings
from tests.e2e.orgs.helpers import call, created, wallet_key
from tests.fixtures.app import RouterWith, RunningRouter

SECRET = "whsec_test_megarouter"
CENTS = 2_500  # 25.00 USD
NANO_USD_PER_CENT = 10_000_000


def _event(event_id: str, event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}}
    ).encode()


async def _deliver(
    router: RunningRouter, payload: bytes, *, secret: str = SECRET
) -> tuple[int, dict[str, Any]]:
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret)
    response = await router.client.post(
        "/v1/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    document: dict[str, Any] = await response.json()
    return response.status, document


def _checkout(
    org_id: int, *, event_id: str = "evt_checkout_1", event_type: str = "checkout.session.completed"
) -> bytes:
    return _event(
        event_id,
        event_type,
        {
            "id": "cs_test_1",
            "object": "checkout.session",
            "payment_status": "paid",
            "amount_total": CENTS,
            "currency": "usd",
            "metadata": {"org_id": str(org_id)},
            "payment_intent": "pi_test_1",
        },
    )


async def test_checkout_credits_once_bad_signature_nothing_refund_and_dispute_reverse(
    router_with: RouterWith,
) -> None:
    async with router_with(orgs=OrgSettings(stripe_webhook_secret=SecretStr(SECRET))) as router:
        _, owner_key = await wallet_key(router)
        org = await created(router, "/v1/orgs", owner_key, {"name": "Cards"})
        ledger = router.app[BILLING].ledger
        payload = _checkout(org["id"])

        # A bad signature (another secret) and a tampered body book nothing.
        assert (await _deliver(router, payload, secret="whsec_wrong"))[0] == 400
        header = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET)
        tampered = payload.replace(str(CENTS).encode(), b"999999")
        response = await router.client.post(
            "/v1/stripe/webhook", data=tampered, headers={"Stripe-Signature": header}
        )
        assert (response.status, (await response.json())["error"]["code"]) == (400, "invalid_signature")
        status, credits = await call(router, "GET", f"/v1/orgs/{org['id']}/credits", owner_key)
        assert (status, credits["posted_nano_usd"]) == (200, 0)

        # Delivered once, again, twice at once, and as another event about the same payment: booked once.
        status, first = await _deliver(router, payload)
        assert (status, first["booked"], first["amount_nano_usd"]) == (200, True, CENTS * NANO_USD_PER_CENT)
        again = await asyncio.gather(*(_deliver(router, payload) for _ in range(3)))
        assert [(s, d["booked"]) for s, d in again] == [(200, False)] * 3
        other = _checkout(
            org["id"], event_id="evt_async_1", event_type="checkout.session.async_payment_succeeded"
        )
        assert (await _deliver(router, other))[1]["booked"] is False
        assert (await ledger.balance(org["credit_account"])).posted == CENTS * NANO_USD_PER_CENT
        status, audit = await call(router, "GET", f"/v1/orgs/{org['id']}/audit", owner_key)
        assert [e["actor"] for e in audit["data"] if e["action"] == "credits.topup"] == ["stripe"]

        # A partial refund reverses its amount, once.
        refund = _event(
            "evt_refund_1",
            "refund.created",
            {
                "id": "re_1",
                "amount": 500,
                "currency": "usd",
                "payment_intent": "pi_test_1",
                "status": "succeeded",
            },
        )
        assert (await _deliver(router, refund))[1]["amount_nano_usd"] == -500 * NANO_USD_PER_CENT
        assert (await _deliver(router, refund))[1]["booked"] is False
        assert (await ledger.balance(org["credit_account"])).posted == (CENTS - 500) * NANO_USD_PER_CENT

        # A dispute takes the rest back; winning it gives it back.
        dispute = {
            "id": "dp_1",
            "amount": 2_000,
            "currency": "usd",
            "payment_intent": "pi_test_1",
            "status": "needs_response",
        }
        assert (await _deliver(router, _event("evt_dp_1", "charge.dispute.created", dispute)))[1]["booked"]
        assert (await ledger.balance(org["credit_account"])).posted == 0
        won = {**dispute, "status": "won"}
        assert (await _deliver(router, _event("evt_dp_2", "charge.dispute.closed", won)))[1]["booked"]
        assert (await ledger.balance(org["credit_account"])).posted == 2_000 * NANO_USD_PER_CENT
        assert (await ledger.balance(STRIPE_BALANCE)).posted == 2_000 * NANO_USD_PER_CENT
        assert await check_ledger(router.app[DB_ENGINE]) == []


async def test_webhook_without_a_secret_does_not_exist(router: RunningRouter) -> None:
    response = await router.client.post(
        "/v1/stripe/webhook", data=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}
    )
    assert (response.status, (await response.json())["error"]["code"]) == (404, "stripe_not_configured")
