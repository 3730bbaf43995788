"""Provider usage above the quote is booked where the operator sees it, and never charged to the caller.

Goal: when an upstream reports more output than the request allowed (seen with tool calls: 6,904 output
tokens for max_tokens=1), the caller pays exactly the quote it was held for; the rest, still owed to the
provider, is booked as `expense:usage_overage:<provider>` against that provider's payable, named in the
usage event (API and CLI), and the ledger stays consistent. Also: a response JSON schema widens the quote.

Method: the real app (SQLite) with the simulated providers told to over-report output tokens through
their fault knob; non-streamed and streamed requests; then the ledger, the usage log and the CLIs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ledger import chart
from proxy.api.app_keys import CATALOG, LEDGER
from proxy.cli import main
from proxy.money import TOKENS_PER_MTOK, div_ceil
from proxy.serving.usage_log import UsageEvent
from tests.e2e.accounts.helpers import bearer
from tests.e2e.api.support import credit_balance, funded_key, resolved_hold
from tests.fixtures.app import RunningRouter

MODEL_ID = "openai/gpt-4o-mini"
OVER_REPORTED_TOKENS = 6_904


def _real_cost_nano_usd(event: UsageEvent) -> int:
    """The event's tokens at the event's prices: what the provider bills for what it reported."""
    prices = event.prices_nano_usd_per_mtok
    uncached = event.input_tokens - event.cached_input_tokens - event.cache_write_input_tokens
    return div_ceil(
        uncached * prices["input"]
        + event.cached_input_tokens * prices["cached_input"]
        + event.cache_write_input_tokens * prices["cache_write_input"]
        + event.output_tokens * prices["output"],
        TOKENS_PER_MTOK,
    )


def _over_report(router: RunningRouter) -> None:
    for server in router.simulator.servers.values():
        server.set_fault("*", output_tokens_over_reported=OVER_REPORTED_TOKENS)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_overage_is_an_expense_not_a_charge(
    router: RunningRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    payer = router.payers[4]
    key = await funded_key(router, payer, amount_usd="1")
    provider = router.app[CATALOG].get(MODEL_ID).provider
    _over_report(router)
    before = await credit_balance(router, payer)
    bodies: list[dict[str, Any]] = [
        {"model": MODEL_ID, "messages": [{"role": "user", "content": "one word"}], "max_tokens": 1},
        {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": "one word, streamed"}],
            "max_tokens": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ]
    events: list[UsageEvent] = []
    for body in bodies:
        response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert response.status == 200, await response.text()
        await response.read()
        hold, event = await resolved_hold(router, response.headers["X-Request-Id"])
        quote_nano_usd = int(response.headers["X-MegaRouter-Quote-Nano-USD"])
        assert event.output_tokens > OVER_REPORTED_TOKENS
        assert hold.captured_amount == event.cost_nano_usd == event.quote_nano_usd == quote_nano_usd
        assert event.overage_nano_usd == _real_cost_nano_usd(event) - quote_nano_usd > 0
        events.append(event)

    after = await credit_balance(router, payer)
    assert before.posted - after.posted == sum(event.quote_nano_usd for event in events)
    ledger = router.app[LEDGER]
    expense = await ledger.balance(chart.usage_overage_expense(provider))
    assert expense.posted == sum(event.overage_nano_usd for event in events)
    payable = await ledger.balance(chart.provider_payable(provider))
    assert payable.posted >= sum(event.quote_nano_usd + event.overage_nano_usd for event in events)

    listed = await router.client.get("/v1/usage?limit=5", headers=bearer(key))
    data = (await listed.json())["data"]
    assert sorted(item["overage_nano_usd"] for item in data) == sorted(e.overage_nano_usd for e in events)
    capsys.readouterr()
    cli = ["usage", events[0].request_id, "--json", "--database-url", router.settings.database_url]
    assert await asyncio.to_thread(main, cli) == 0
    assert json.loads(capsys.readouterr().out)[0]["overage_nano_usd"] == events[0].overage_nano_usd
    check = ["ledger", "check", "--database-url", router.settings.database_url]
    assert await asyncio.to_thread(main, check) == 0
    assert "ledger check OK" in capsys.readouterr().out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_response_schema_widens_the_quote(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[5], amount_usd="1")
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(400)}}
    base = {"model": MODEL_ID, "messages": [{"role": "user", "content": "fill the form"}], "max_tokens": 8}
    with_schema = base | {
        "response_format": {"type": "json_schema", "json_schema": {"name": "form", "schema": schema}}
    }
    quotes = []
    for body in (base | {"response_format": {"type": "json_object"}}, with_schema):
        response = await router.client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert response.status == 200, await response.text()
        quotes.append(int(response.headers["X-MegaRouter-Quote-Nano-USD"]))
    model = router.app[CATALOG].get(MODEL_ID)
    schema_bytes = len(json.dumps(schema, separators=(",", ":")).encode("utf-8"))
    assert quotes[1] - quotes[0] >= schema_bytes * model.input_price_nano_usd_per_mtok // TOKENS_PER_MTOK
