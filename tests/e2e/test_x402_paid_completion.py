"""The spine, end to end: an agent with a wallet and no account pays per call with x402 and is served.

Method: the real app (create_app) against a real Anvil with our token contracts, the OpenAI simulator as
upstream, and SQLite or PostgreSQL; payments are real EIP-3009 signatures. Every bad payment must be
refused with its reason code and change nothing: no upstream call, no ledger row, no chain transaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eth_account import Account

from ledger import chart, check_ledger
from proxy.api.app_keys import DB_ENGINE, LEDGER
from tests.e2e.payments import decode_b64_json, encode_b64_json, sign_v1_payment, sign_v2_payment
from tests.fixtures.app import RunningRouter

CHAT_BODY: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Name three primary colours."}],
    "max_tokens": 64,
}


async def _offer(router: RunningRouter, body: dict[str, Any] = CHAT_BODY) -> dict[str, Any]:
    response = await router.client.post("/v1/chat/completions", json=body)
    assert response.status == 402
    document: dict[str, Any] = await response.json()
    return document


async def test_unpaid_request_gets_402_with_header_and_body_agreeing(router: RunningRouter) -> None:
    response = await router.client.post("/v1/chat/completions", json=CHAT_BODY)
    assert response.status == 402
    body = await response.json()
    assert decode_b64_json(response.headers["PAYMENT-REQUIRED"]) == body
    assert body["x402Version"] == 2
    assert body["resource"]["url"].endswith("/v1/chat/completions")
    assert body["resource"]["mimeType"] == "application/json"
    assert {entry["asset"].lower() for entry in body["accepts"]} == {
        router.tokens.usdc.address.lower(),
        router.tokens.usdt.address.lower(),
    }
    # One `exact` offer per token, then one `upto` offer per token (tests/e2e/test_x402_upto.py).
    assert [entry["scheme"] for entry in body["accepts"]] == ["exact", "exact", "upto", "upto"]
    for entry in body["accepts"][:2]:
        assert entry["scheme"] == "exact"
        assert entry["network"] == "eip155:31337"
        assert entry["amount"].isdigit()
        assert int(entry["amount"]) > 0
        assert entry["payTo"].lower() == router.settlement_wallet.lower()
        assert entry["maxTimeoutSeconds"] == router.settings.payment_validity_s
        assert {"name", "version"} <= set(entry["extra"])
    assert {(e["extra"]["name"], e["extra"]["version"]) for e in body["accepts"]} == {
        ("USD Coin", "2"),
        ("USDT0", "1"),
    }
    assert "PAYMENT-REQUIRED" in response.headers.get("Access-Control-Expose-Headers", "")


async def test_paid_request_is_served_settled_and_booked(router: RunningRouter) -> None:
    payer = router.payers[0]
    offer = await _offer(router)
    quote_atomic = int(offer["accepts"][0]["amount"])
    payer_before = await router.token_balance(router.tokens.usdc.address, payer.address)
    wallet_before = await router.token_balance(router.tokens.usdc.address, router.settlement_wallet)

    header = encode_b64_json(sign_v2_payment(payer, offer))
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200, await response.text()
    completion = await response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"]

    settlement = decode_b64_json(response.headers["PAYMENT-RESPONSE"])
    assert settlement["success"] is True
    assert settlement["network"] == "eip155:31337"
    assert settlement["payer"].lower() == payer.address.lower()
    receipt = await router.w3.eth.get_transaction_receipt(settlement["transaction"])
    assert receipt["status"] == 1

    assert (
        await router.token_balance(router.tokens.usdc.address, payer.address) == payer_before - quote_atomic
    )
    assert (
        await router.token_balance(router.tokens.usdc.address, router.settlement_wallet)
        == wallet_before + quote_atomic
    )

    ledger = router.app[LEDGER]
    assert await check_ledger(router.app[DB_ENGINE]) == []
    cost_nano_usd = int(response.headers["X-MegaRouter-Cost-Nano-USD"])
    credit = await ledger.balance(chart.credit_wallet(payer.address))
    assert credit.available == quote_atomic * 1_000 - cost_nano_usd
    assert cost_nano_usd > 0


async def test_v1_x_payment_header_is_accepted(router: RunningRouter) -> None:
    offer = await _offer(router)
    header = encode_b64_json(sign_v1_payment(router.payers[1], offer, network_name=router.v1_network_name))
    response = await router.client.post("/v1/chat/completions", json=CHAT_BODY, headers={"X-PAYMENT": header})
    assert response.status == 200, await response.text()
    assert decode_b64_json(response.headers["X-PAYMENT-RESPONSE"])["success"] is True


BadPayment = dict[str, Any]


def _bad_payment_cases() -> list[Any]:
    stranger = Account.create()
    now = int(time.time())
    return [
        pytest.param({"document_overrides": {"x402Version": 3}}, "invalid_x402_version", id="wrong-version"),
        pytest.param({"accepted_overrides": {"scheme": "deferred"}}, "unsupported_scheme", id="wrong-scheme"),
        pytest.param(
            {"accepted_overrides": {"network": "eip155:8453"}}, "invalid_network", id="wrong-network"
        ),
        pytest.param(
            {"accepted_overrides": {"asset": "0x" + "11" * 20}},
            "invalid_payment_requirements",
            id="wrong-asset",
        ),
        pytest.param(
            {"to": "0x" + "22" * 20}, "invalid_exact_evm_payload_recipient_mismatch", id="wrong-payto"
        ),
        pytest.param(
            {"value_delta": -1},
            "invalid_exact_evm_payload_authorization_value_mismatch",
            id="amount-below-quote",
        ),
        pytest.param(
            {"value_delta": 1},
            "invalid_exact_evm_payload_authorization_value_mismatch",
            id="amount-above-quote",
        ),
        pytest.param(
            {"valid_before": now - 1}, "invalid_exact_evm_payload_authorization_valid_before", id="expired"
        ),
        pytest.param(
            {"valid_after": now + 3600},
            "invalid_exact_evm_payload_authorization_valid_after",
            id="not-yet-valid",
        ),
        pytest.param({"corrupt_signature": True}, "invalid_exact_evm_payload_signature", id="bad-signature"),
        pytest.param({"signer": stranger}, "invalid_exact_evm_payload_signature", id="signed-by-another-key"),
        pytest.param(
            {"domain_name": "Not USD Coin"},
            "invalid_exact_evm_payload_signature",
            id="signed-for-another-domain",
        ),
    ]


@pytest.mark.parametrize(("tamper", "reason"), _bad_payment_cases())
async def test_bad_payment_gets_its_reason_and_changes_nothing(
    router: RunningRouter, tamper: BadPayment, reason: str
) -> None:
    offer = await _offer(router)
    tamper = dict(tamper)
    value_delta = tamper.pop("value_delta", 0)
    corrupt = tamper.pop("corrupt_signature", False)
    if value_delta:
        tamper["value"] = int(offer["accepts"][0]["amount"]) + value_delta
    document = sign_v2_payment(router.payers[2], offer, **tamper)
    if corrupt:
        signature = document["payload"]["signature"]
        document["payload"]["signature"] = (
            signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
        )
    before = await router.snapshot()
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": encode_b64_json(document)}
    )
    assert response.status == 402, await response.text()
    body = await response.json()
    assert body["error"] == reason
    assert decode_b64_json(response.headers["PAYMENT-REQUIRED"]) == body
    assert await router.snapshot() == before


async def test_malformed_payment_header_is_400_and_changes_nothing(router: RunningRouter) -> None:
    before = await router.snapshot()
    for header in ("not base64!", encode_b64_json({"x402Version": 2, "payload": "nope"})):
        response = await router.client.post(
            "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_payload"
    assert await router.snapshot() == before


async def test_insufficient_balance_is_refused_before_settlement(router: RunningRouter) -> None:
    offer = await _offer(router)
    broke = Account.create()
    before = await router.snapshot()
    response = await router.client.post(
        "/v1/chat/completions",
        json=CHAT_BODY,
        headers={"PAYMENT-SIGNATURE": encode_b64_json(sign_v2_payment(broke, offer))},
    )
    assert response.status == 402
    assert (await response.json())["error"] == "insufficient_funds"
    assert await router.snapshot() == before


async def test_replay_of_a_settled_payment_is_refused(router: RunningRouter) -> None:
    offer = await _offer(router)
    header = encode_b64_json(sign_v2_payment(router.payers[3], offer))
    first = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert first.status == 200
    before = await router.snapshot()
    replay = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert replay.status == 402
    assert (await replay.json())["error"] == "invalid_exact_evm_nonce_already_used"
    assert await router.snapshot() == before


async def test_nonce_used_on_chain_is_refused(router: RunningRouter) -> None:
    offer = await _offer(router)
    document = sign_v2_payment(router.payers[4], offer)
    await router.front_run(document, sender=router.payers[8].address)
    before = await router.snapshot()
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": encode_b64_json(document)}
    )
    assert response.status == 402
    assert (await response.json())["error"] == "invalid_exact_evm_nonce_already_used"
    assert await router.snapshot() == before


async def test_twenty_concurrent_copies_of_one_authorization_are_served_once(router: RunningRouter) -> None:
    offer = await _offer(router)
    header = encode_b64_json(sign_v2_payment(router.payers[5], offer))
    block_before = await router.w3.eth.block_number

    async def submit() -> int:
        response = await router.client.post(
            "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
        )
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(submit() for _ in range(20)))
    assert sorted(statuses) == [200] + [402] * 19
    # Exactly one settlement transaction reached the chain (Anvil mines one block per transaction).
    assert await router.w3.eth.block_number == block_before + 1
    assert await check_ledger(router.app[DB_ENGINE]) == []
    assert await router.upstream_calls() == 1


async def test_settlement_gas_is_booked_in_wei_once(router: RunningRouter) -> None:
    offer = await _offer(router)
    header = encode_b64_json(sign_v2_payment(router.payers[6], offer))
    response = await router.client.post(
        "/v1/chat/completions", json=CHAT_BODY, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200
    receipt = await router.w3.eth.get_transaction_receipt(
        decode_b64_json(response.headers["PAYMENT-RESPONSE"])["transaction"]
    )
    gas_wei = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert gas_wei > 0
    ledger = router.app[LEDGER]
    expense = await ledger.balance(chart.gas_expense("eip155:31337"))
    native = await ledger.balance(chart.native_cash("eip155:31337", router.settlement_wallet))
    assert (expense.unit, expense.posted) == ("wei", gas_wei)
    assert (native.unit, native.posted) == ("wei", -gas_wei)
    assert await check_ledger(router.app[DB_ENGINE]) == []
