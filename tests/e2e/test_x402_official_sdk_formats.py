"""The official x402 SDK pays the Messages and Responses doors exactly as it pays chat.

Goal: an agent with a wallet and no account, using only the official x402 SDK, pays per call at
`POST /v1/messages` (Anthropic format) and `POST /v1/responses` (OpenAI Responses format): the unpaid
request gets the x402 402 document (not the door's own error shape), the SDK pays the quote, and the
answer is a 200 in the door's own format with PAYMENT-RESPONSE naming the settling transaction. The payer's
token balance moves by exactly the quote, the credit keeps quote − cost, and the ledger is consistent.

Method: the real app (router fixture, SQLite and PostgreSQL) against Anvil with our token contracts and the
simulated providers; the SDK agent runs in its own virtual environment as a subprocess
(tests/e2e/official_x402_agent.py). The cost is recomputed from the catalog prices and the usage the
answer shows, and compared with the usage log, the captured hold and the credit left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ledger import chart, check_ledger
from proxy.api.app_keys import CATALOG, DB_ENGINE, LEDGER
from proxy.catalog import CatalogModel
from tests.e2e.api.support import holds_of, usage_event
from tests.e2e.official_x402_agent import DEVNET_NETWORK, pay_with_official_sdk
from tests.e2e.payments import decode_b64_json
from tests.fixtures.app import RunningRouter

TOKENS_PER_MTOK = 1_000_000
NANO_USD_PER_ATOMIC = 1_000  # USDC has 6 decimals: one atomic unit is 10⁻⁶ USD.


def _anthropic_usage_numerator(model: CatalogModel, usage: dict[str, Any]) -> int:
    # Anthropic's input_tokens exclude the cache reads and writes, reported on their own.
    numerator: int = (
        usage["input_tokens"] * model.input_price_nano_usd_per_mtok
        + (usage.get("cache_read_input_tokens") or 0) * model.cached_input_price_nano_usd_per_mtok
        + (usage.get("cache_creation_input_tokens") or 0) * model.cache_write_input_price_nano_usd_per_mtok
        + usage["output_tokens"] * model.output_price_nano_usd_per_mtok
    )
    return numerator


def _responses_usage_numerator(model: CatalogModel, usage: dict[str, Any]) -> int:
    # The Responses API's input_tokens include the cached ones.
    cached = usage["input_tokens_details"]["cached_tokens"]
    numerator: int = (
        (usage["input_tokens"] - cached) * model.input_price_nano_usd_per_mtok
        + cached * model.cached_input_price_nano_usd_per_mtok
        + usage["output_tokens"] * model.output_price_nano_usd_per_mtok
    )
    return numerator


def _assert_anthropic_message(document: dict[str, Any]) -> None:
    assert document["type"] == "message"
    assert document["role"] == "assistant"
    assert document["id"].startswith("msg_")
    assert document["content"][0]["type"] == "text"
    assert document["content"][0]["text"]
    assert document["stop_reason"] in ("end_turn", "max_tokens")


def _assert_response_object(document: dict[str, Any]) -> None:
    assert document["object"] == "response"
    assert document["id"].startswith("resp_")
    assert document["status"] in ("completed", "incomplete")
    message = document["output"][0]
    assert message["type"] == "message"
    assert message["content"][0]["type"] == "output_text"
    assert message["content"][0]["text"]


@dataclass(frozen=True)
class Door:
    path: str
    body: dict[str, Any]
    assert_format: Callable[[dict[str, Any]], None]
    usage_numerator: Callable[[CatalogModel, dict[str, Any]], int]


DOORS = {
    "messages": Door(
        path="/v1/messages",
        body={
            "model": "anthropic/claude-haiku-4-5",
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 32,
        },
        assert_format=_assert_anthropic_message,
        usage_numerator=_anthropic_usage_numerator,
    ),
    "responses": Door(
        path="/v1/responses",
        body={
            "model": "openai/gpt-4o-mini",
            "instructions": "You are terse.",
            "input": "Say hi",
            "max_output_tokens": 32,
        },
        assert_format=_assert_response_object,
        usage_numerator=_responses_usage_numerator,
    ),
}


@pytest.mark.parametrize("door_name", sorted(DOORS))
async def test_official_sdk_agent_pays_each_door_and_gets_its_format(
    router: RunningRouter, door_name: str
) -> None:
    door = DOORS[door_name]
    payer = router.payers[6]
    usdc = router.tokens.usdc.address

    unpaid = await router.client.post(door.path, json=door.body)
    assert unpaid.status == 402, await unpaid.text()
    offer = await unpaid.json()
    assert decode_b64_json(unpaid.headers["PAYMENT-REQUIRED"]) == offer
    assert offer["x402Version"] == 2
    assert offer["resource"]["url"].endswith(door.path)
    # The SDK agent registers `exact`; an `upto` offer for the same token follows it (test_x402_upto.py).
    usdc_offers = [entry for entry in offer["accepts"] if entry["asset"].lower() == usdc.lower()]
    assert [entry["scheme"] for entry in usdc_offers] == ["exact", "upto"]
    usdc_offer = usdc_offers[0]
    assert usdc_offer["network"] == DEVNET_NETWORK
    quote_atomic = int(usdc_offer["amount"])
    assert quote_atomic > 0
    payer_before = await router.token_balance(usdc, payer.address)
    wallet_before = await router.token_balance(usdc, router.settlement_wallet)

    result = await pay_with_official_sdk(router, path=door.path, body=door.body, payer=payer, asset=usdc)

    assert result["status"] == 200, result
    answer: dict[str, Any] = result["body"]
    door.assert_format(answer)
    settlement = decode_b64_json(result["payment_response"])
    assert settlement["success"] is True
    assert settlement["network"] == DEVNET_NETWORK
    assert settlement["payer"].lower() == payer.address.lower()
    receipt = await router.w3.eth.get_transaction_receipt(settlement["transaction"])
    assert receipt["status"] == 1
    assert await router.token_balance(usdc, payer.address) == payer_before - quote_atomic
    assert await router.token_balance(usdc, router.settlement_wallet) == wallet_before + quote_atomic

    model = router.app[CATALOG].get(door.body["model"])
    cost_nano_usd = -(-door.usage_numerator(model, answer["usage"]) // TOKENS_PER_MTOK)
    assert cost_nano_usd > 0
    [hold] = await holds_of(router, payer)
    request_id = hold.metadata["request_id"]
    assert isinstance(request_id, str)
    event = await usage_event(router, request_id)
    assert event.outcome == "completed"
    assert event.cost_nano_usd == cost_nano_usd
    assert event.hold_id == hold.id
    assert hold.state == "captured"
    assert hold.captured_amount == cost_nano_usd
    credit = await router.app[LEDGER].balance(chart.credit_wallet(payer.address))
    assert credit.pending == 0
    assert credit.available == quote_atomic * NANO_USD_PER_ATOMIC - cost_nano_usd
    assert await check_ledger(router.app[DB_ENGINE]) == []
