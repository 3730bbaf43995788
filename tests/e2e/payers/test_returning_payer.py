"""A keyless x402 payer spends its credit on later calls by signing in with x402's `sign-in-with-x`.

Goal: a returning payer whose credit covers the quote is served with no new payment (its token balance on
chain does not move, its credit pays the cost, hold and capture as for keyed requests); with too little
credit, the 402 asks only for the shortfall, and paying it on the signed-in request serves it. A proof is
accepted once (a replay is refused), must come from this server's scope, and a shortfall paid by another
wallet is refused before anything settles. The 402 carries `bazaar` and `sign-in-with-x`, and the paid
resources are listed at /.well-known/x402.

Method: the running router (SQLite and PostgreSQL) on Anvil; proofs are signed with eth_account as the
official SDK signs them (EIP-191 over the EIP-4361 text); the ledger is checked clean after each scenario.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from proxy.api.x402_discovery import PAID_RESOURCES
from tests.e2e.api.support import topup
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_in_with_x, sign_v2_payment
from tests.fixtures.app import RunningRouter

BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 200}
PATH = "/v1/chat/completions"


async def _offer(router: RunningRouter) -> dict[str, Any]:
    response = await router.client.post(PATH, json=BODY)
    assert response.status == 402, await response.text()
    document: dict[str, Any] = decode_b64_json(response.headers["PAYMENT-REQUIRED"])
    assert document == await response.json()
    return document


async def test_credit_covers_the_quote_so_nothing_is_paid(router: RunningRouter) -> None:
    payer = router.payers[6]
    await topup(router, payer, amount_usd="0.5")
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    credit_before = await ledger.balance(credit_account)
    token = router.settings.assets[0].address
    chain_before = await router.token_balance(token, payer.address)

    offer = await _offer(router)
    declaration = offer["extensions"]["sign-in-with-x"]
    assert declaration["supportedChains"] == [
        {"chainId": f"eip155:{router.settings.chain_id}", "type": "eip191"}
    ]
    header = sign_in_with_x(payer, offer)
    served = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header})
    assert served.status == 200, await served.text()
    assert "PAYMENT-RESPONSE" not in served.headers
    cost_nano_usd = int(served.headers["X-MegaRouter-Cost-Nano-USD"])
    assert cost_nano_usd > 0
    assert await router.token_balance(token, payer.address) == chain_before
    credit_after = await ledger.balance(credit_account)
    assert credit_after.available == credit_before.available - cost_nano_usd
    assert credit_after.pending == 0

    # The same proof again: refused, and nothing moves.
    replayed = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header})
    assert replayed.status == 402
    assert (await replayed.json())["error"] == "invalid_siwx_nonce"
    assert await ledger.balance(credit_account) == credit_after
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_short_credit_is_offered_the_shortfall_then_served(router: RunningRouter) -> None:
    payer, stranger = router.payers[7], router.payers[8]
    await topup(router, payer, amount_usd="0.000001")
    ledger = router.app[LEDGER]
    credit_account = chart.credit_wallet(payer.address)
    before = await ledger.balance(credit_account)
    full_quote_atomic = int((await _offer(router))["accepts"][0]["amount"])

    refused = await router.client.post(
        PATH, json=BODY, headers={"SIGN-IN-WITH-X": sign_in_with_x(payer, await _offer(router))}
    )
    assert refused.status == 402
    shortfall_offer = await refused.json()
    assert shortfall_offer["error"] == "insufficient_credit"
    shortfall_atomic = int(shortfall_offer["accepts"][0]["amount"])
    assert shortfall_atomic == full_quote_atomic - 1  # The credit held exactly one atomic unit.
    assert await ledger.balance(credit_account) == before

    # Another wallet's money cannot pay this wallet's shortfall: refused before anything settles.
    token = router.settings.assets[0].address
    stranger_chain_before = await router.token_balance(token, stranger.address)
    wrong = await router.client.post(
        PATH,
        json=BODY,
        headers={
            "SIGN-IN-WITH-X": sign_in_with_x(payer, await _offer(router)),
            "PAYMENT-SIGNATURE": encode_b64_json(sign_v2_payment(stranger, shortfall_offer)),
        },
    )
    assert wrong.status == 402
    assert (await wrong.json())["error"] == "invalid_siwx_payer_mismatch"
    assert await router.token_balance(token, stranger.address) == stranger_chain_before
    assert await ledger.balance(credit_account) == before

    paid = await router.client.post(
        PATH,
        json=BODY,
        headers={
            "SIGN-IN-WITH-X": sign_in_with_x(payer, await _offer(router)),
            "PAYMENT-SIGNATURE": encode_b64_json(sign_v2_payment(payer, shortfall_offer)),
        },
    )
    assert paid.status == 200, await paid.text()
    settled = decode_b64_json(paid.headers["PAYMENT-RESPONSE"])
    assert settled["success"] is True
    assert settled["amount"] == str(shortfall_atomic)
    cost_nano_usd = int(paid.headers["X-MegaRouter-Cost-Nano-USD"])
    after = await ledger.balance(credit_account)
    assert after.available == before.available + shortfall_atomic * 1_000 - cost_nano_usd
    assert after.pending == 0
    assert await check_ledger(router.app[DB_ENGINE]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"domain": "evil.example"}, "invalid_siwx_domain_mismatch"),
        ({"uri": "https://evil.example"}, "invalid_siwx_uri_mismatch"),
        ({"chainId": "eip155:1"}, "invalid_siwx_unsupported_chain"),
        ({"nonce": "0123456789abcdef"}, "invalid_siwx_signature"),
        ({"issuedAt": "2020-01-01T00:00:00Z"}, "invalid_siwx_issued_at_too_old"),
    ],
)
async def test_a_broken_proof_moves_nothing(
    router: RunningRouter, overrides: dict[str, Any], reason: str
) -> None:
    payer = router.payers[6]
    await topup(router, payer, amount_usd="0.5")
    before = await router.app[LEDGER].balance(chart.credit_wallet(payer.address))
    header = sign_in_with_x(payer, await _offer(router), overrides=overrides)
    refused = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": header})
    assert refused.status == 402
    assert (await refused.json())["error"] == reason
    assert await router.app[LEDGER].balance(chart.credit_wallet(payer.address)) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_undecodable_proof_is_a_400(router: RunningRouter) -> None:
    refused = await router.client.post(PATH, json=BODY, headers={"SIGN-IN-WITH-X": "not base64!"})
    assert refused.status == 400
    assert (await refused.json())["error"] == "invalid_payload"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_paid_resources_are_discoverable(router: RunningRouter) -> None:
    listed = await router.client.get("/.well-known/x402")
    assert listed.status == 200
    document = await listed.json()
    assert document["version"] == 1
    paths = {resource.split("/", 3)[3] for resource in document["resources"]}
    assert paths == {"v1/chat/completions", "v1/responses", "v1/messages", "v1/embeddings"}
    for resource in document["resources"]:
        path = "/" + resource.split("/", 3)[3]
        offer_response = await router.client.post(path, json=PAID_RESOURCES[path]["example"])
        assert offer_response.status == 402, (path, await offer_response.text())
        offer = await offer_response.json()
        assert decode_b64_json(offer_response.headers["PAYMENT-REQUIRED"]) == offer
        assert len(offer_response.headers["PAYMENT-REQUIRED"]) < 8_000, path  # Fits common header limits.
        bazaar = offer["extensions"]["bazaar"]
        assert bazaar["info"]["input"] == {
            "type": "http",
            "method": "POST",
            "bodyType": "json",
            "body": PAID_RESOURCES[path]["example"],
        }
        body_schema = bazaar["schema"]["properties"]["input"]["properties"]["body"]
        assert body_schema == PAID_RESOURCES[path]["input_schema"]
        assert (
            bazaar["schema"]["properties"]["output"]["properties"]["example"]
            == PAID_RESOURCES[path]["output_schema"]
        )
        assert "sign-in-with-x" in offer["extensions"]
