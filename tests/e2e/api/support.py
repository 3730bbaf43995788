"""What an API caller of MegaRouter needs in these tests: a funded wallet-bound key, an official `openai`
client on it, and read access to the ledger and usage log to check what each request was charged.

Shared by tests/e2e/api and tests/e2e/routing. Credit is bought the way a wallet would buy it: an x402
payment to `POST /v1/credits/topup?amount=<USD>`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
from aiohttp import ClientResponse
from eth_account.signers.local import LocalAccount

from ledger import Balance, Hold, chart, check_ledger
from proxy.api.app_keys import CATALOG, DB_ENGINE, LEDGER, USAGE_LOG
from proxy.money import TOKENS_PER_MTOK
from proxy.providers.tokens import estimate_text_tokens
from proxy.serving.usage_log import UsageEvent
from tests.e2e.accounts.helpers import obtain_key
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.fixtures.app import RunningRouter

__all__ = [
    "NANO_USD_PER_USD",
    "assert_charged_for_what_was_produced",
    "assert_voided_and_payment_kept",
    "catalog_cost_nano_usd",
    "credit_balance",
    "funded_key",
    "holds_of",
    "openai_client",
    "post_paid_with_x402",
    "read_until_events",
    "resolved_hold",
    "topup",
    "usage_event",
]

NANO_USD_PER_USD = 1_000_000_000
NANO_USD_PER_ATOMIC = 1_000  # The devnet tokens have 6 decimals.
# Every wait in these tests is bounded; a hold still pending after this long is a bug, not a slow machine.
RESOLVE_WAIT_S_MAX = 10.0


async def topup(router: RunningRouter, payer: LocalAccount, *, amount_usd: str) -> int:
    """Buys `amount_usd` of credit for `payer`'s wallet with an x402 payment; returns nano-USD credited."""
    path = f"/v1/credits/topup?amount={amount_usd}"
    offer_response = await router.client.post(path)
    assert offer_response.status == 402, await offer_response.text()
    offer = await offer_response.json()
    header = encode_b64_json(sign_v2_payment(payer, offer))
    response = await router.client.post(path, headers={"PAYMENT-SIGNATURE": header})
    assert response.status == 200, await response.text()
    credited: int = (await response.json())["credited_nano_usd"]
    assert credited > 0
    return credited


async def funded_key(router: RunningRouter, payer: LocalAccount, *, amount_usd: str = "1") -> str:
    """A wallet-bound API key whose wallet has `amount_usd` of credit."""
    key: str = (await obtain_key(router, payer))["key"]
    await topup(router, payer, amount_usd=amount_usd)
    return key


@asynccontextmanager
async def openai_client(router: RunningRouter, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at the test server; no SDK retries, so every attempt seen is ours."""
    client = openai.AsyncOpenAI(
        base_url=str(router.client.make_url("/v1")), api_key=key, max_retries=0, timeout=30.0
    )
    try:
        yield client
    finally:
        await client.close()


async def credit_balance(router: RunningRouter, payer: LocalAccount) -> Balance:
    return await router.app[LEDGER].balance(chart.credit_wallet(payer.address))


async def holds_of(router: RunningRouter, payer: LocalAccount) -> list[Hold]:
    """Every inference hold taken on the payer's credit, oldest first."""
    account = chart.credit_wallet(payer.address)
    holds = await router.app[LEDGER].holds(limit=10_000)
    return sorted((hold for hold in holds if hold.debit_account == account), key=lambda hold: hold.id)


async def usage_event(router: RunningRouter, request_id: str) -> UsageEvent:
    events = await router.app[USAGE_LOG].for_request(request_id)
    assert len(events) == 1, events
    return events[0]


async def resolved_hold(router: RunningRouter, request_id: str) -> tuple[Hold, UsageEvent]:
    """Waits (bounded) until the request's hold is resolved and its usage event written; returns both."""
    deadline_s = time.monotonic() + RESOLVE_WAIT_S_MAX
    while True:
        events = await router.app[USAGE_LOG].for_request(request_id)
        if events:
            assert len(events) == 1, events
            assert events[0].hold_id is not None
            hold = await router.app[LEDGER].get_hold(events[0].hold_id)
            if hold.state != "pending":
                return hold, events[0]
        assert time.monotonic() < deadline_s, f"hold of {request_id} still unresolved"
        await asyncio.sleep(0.05)


async def post_paid_with_x402(
    router: RunningRouter, path: str, body: dict[str, Any], *, payer: LocalAccount
) -> tuple[ClientResponse, int]:
    """`POST path` without a key, paid with x402 as the 402 asks: the answer and the nano-USD paid."""
    offer_response = await router.client.post(path, json=body)
    assert offer_response.status == 402, await offer_response.text()
    offer = await offer_response.json()
    header = encode_b64_json(sign_v2_payment(payer, offer))
    response = await router.client.post(path, json=body, headers={"PAYMENT-SIGNATURE": header})
    paid_nano_usd = int(offer["accepts"][0]["amount"]) * NANO_USD_PER_ATOMIC
    assert paid_nano_usd > 0
    return response, paid_nano_usd


async def read_until_events(response: ClientResponse, *, event: str, count: int) -> str:
    """The SSE text read (bounded) until `count` events named `event` arrived; the stream stays open."""
    assert count > 0
    received = b""
    marker = f"event: {event}\n".encode()
    async with asyncio.timeout(RESOLVE_WAIT_S_MAX):
        while received.count(marker) < count:
            chunk = await response.content.readany()
            assert chunk, f"the stream ended before {count} {event} events"
            received += chunk
    return received.decode()


def catalog_cost_nano_usd(router: RunningRouter, event: UsageEvent) -> int:
    """What the catalog prices make of an event's uncached tokens (the tests' own arithmetic, rounded up)."""
    assert event.model_id is not None
    assert event.cached_input_tokens == event.cache_write_input_tokens == 0
    model = router.app[CATALOG].get(event.model_id)
    numerator = (
        event.input_tokens * model.input_price_nano_usd_per_mtok
        + event.output_tokens * model.output_price_nano_usd_per_mtok
    )
    return -(-numerator // TOKENS_PER_MTOK)


async def assert_voided_and_payment_kept(
    router: RunningRouter, request_id: str, payer: LocalAccount, *, paid_nano_usd: int
) -> None:
    """Nothing was produced: the hold is voided with its usage event, and the x402 payment is whole credit."""
    hold, event = await resolved_hold(router, request_id)
    assert hold.state == "voided"
    assert event.outcome == "upstream_failed"
    assert event.cost_nano_usd == 0
    credit = await credit_balance(router, payer)
    assert (credit.available, credit.pending) == (paid_nano_usd, 0)
    assert await check_ledger(router.app[DB_ENGINE]) == []


async def assert_charged_for_what_was_produced(
    router: RunningRouter,
    request_id: str,
    payer: LocalAccount,
    *,
    seen_text: str,
    output_tokens_max: int,
    outcome: str = "client_disconnected",
) -> None:
    """A stream ended early: charged once, at catalog prices, for at least what the caller saw and less than
    a full reply; nothing left pending."""
    hold, event = await resolved_hold(router, request_id)
    assert event.outcome == outcome
    assert hold.state == "captured"
    assert event.output_tokens >= estimate_text_tokens(seen_text) > 0
    assert event.output_tokens < output_tokens_max
    expected = catalog_cost_nano_usd(router, event)
    assert event.cost_nano_usd == expected
    assert hold.captured_amount == expected
    assert 0 < expected < hold.amount
    assert (await credit_balance(router, payer)).pending == 0
