"""Messages requests to an Anthropic deployment pass through untranslated; to any other, they translate.

Goal: what only Anthropic's format says survives the router both ways — a `cache_control` breakpoint on a
system block, `thinking` with its budget, `top_k`, a field the router does not know; the reply's signed
thinking block and its cache usage — while the money is exactly as for a translated request: the catalog
price of the usage shown, captured once with its usage event, the credit debited by as much.

Method: the official `anthropic` SDK through the running router to the simulated Anthropic API, which
keeps the last body it received per model; the same request to an OpenAI-kind model for comparison.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import MessageParam, TextBlockParam

from proxy.api.app_keys import CATALOG
from tests.e2e.api.support import credit_balance, funded_key, usage_event
from tests.e2e.api.test_anthropic_sdk import anthropic_client, assert_captured, expected_cost_nano_usd
from tests.fixtures.app import RunningRouter

HAIKU = "anthropic/claude-haiku-4-5"
MINI = "openai/gpt-4o-mini"
# Long enough for the simulated cache (1024 tokens at least before the breakpoint).
SYSTEM: list[TextBlockParam] = [
    {
        "type": "text",
        "text": "You answer questions about routers. " * 300,
        "cache_control": {"type": "ephemeral"},
    }
]
MESSAGES: list[MessageParam] = [{"role": "user", "content": "What does a router do?"}]
THINKING: dict[str, Any] = {"type": "enabled", "budget_tokens": 1024}
EXTRA_BODY = {"top_k": 5, "x_future_field": {"kept": True}}


def last_upstream_body(router: RunningRouter, model_id: str) -> dict[str, Any]:
    upstream_model = router.app[CATALOG].get(model_id).upstream_model
    return router.simulator["primary"].state.last_bodies[upstream_model]


def assert_sent_unchanged(router: RunningRouter, *, stream: bool) -> None:
    sent = last_upstream_body(router, HAIKU)
    assert sent["model"] == router.app[CATALOG].get(HAIKU).upstream_model
    assert sent["system"] == SYSTEM
    assert sent["thinking"] == THINKING
    assert sent["messages"] == MESSAGES
    assert sent["top_k"] == 5
    assert sent["x_future_field"] == {"kept": True}
    assert sent["max_tokens"] == 2048
    assert sent.get("stream", False) is stream


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_cache_control_and_thinking_pass_through_and_are_charged_exactly(router: RunningRouter) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    before = await credit_balance(router, payer)

    raw = await client.messages.with_raw_response.create(
        model=HAIKU,
        system=SYSTEM,
        messages=MESSAGES,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=EXTRA_BODY,
    )
    message = await raw.parse()
    assert_sent_unchanged(router, stream=False)
    assert [block.type for block in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking
    assert thinking.signature.startswith("sig_sim")
    assert message.usage.cache_creation_input_tokens
    assert message.usage.cache_creation_input_tokens >= 1024
    assert raw.headers["X-MegaRouter-Model"] == HAIKU
    cost_nano_usd = expected_cost_nano_usd(router, HAIKU, message.usage)
    assert int(raw.headers["X-MegaRouter-Cost-Nano-USD"]) == cost_nano_usd
    await assert_captured(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)
    event = await usage_event(router, raw.headers["X-Request-Id"])
    assert event.cache_write_input_tokens == message.usage.cache_creation_input_tokens
    assert event.output_tokens == message.usage.output_tokens
    after_message = await credit_balance(router, payer)
    assert before.posted - after_message.posted == cost_nano_usd

    # The same prefix streamed: read from the cache now, the thinking block streamed with its signature.
    async with client.messages.stream(
        model=HAIKU,
        system=SYSTEM,
        messages=MESSAGES,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=EXTRA_BODY,
    ) as stream:
        request_id = stream.response.headers["X-Request-Id"]
        final = await stream.get_final_message()
    assert_sent_unchanged(router, stream=True)
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == thinking.thinking
    assert final.content[0].signature == thinking.signature
    assert final.usage.cache_read_input_tokens == message.usage.cache_creation_input_tokens
    stream_cost_nano_usd = expected_cost_nano_usd(router, HAIKU, final.usage)
    await assert_captured(router, request_id, cost_nano_usd=stream_cost_nano_usd)
    stream_event = await usage_event(router, request_id)
    assert stream_event.cached_input_tokens == final.usage.cache_read_input_tokens
    after_stream = await credit_balance(router, payer)
    assert after_message.posted - after_stream.posted == stream_cost_nano_usd
    assert after_stream.pending == 0
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_to_an_openai_kind_model_is_still_translated(
    router: RunningRouter, stream: bool
) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    arguments: dict[str, Any] = {
        "model": MINI,
        "system": SYSTEM,
        "messages": MESSAGES,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "extra_body": EXTRA_BODY,
    }
    if stream:
        async with client.messages.stream(**arguments) as opened:
            request_id = opened.response.headers["X-Request-Id"]
            message = await opened.get_final_message()
    else:
        raw = await client.messages.with_raw_response.create(**arguments)
        request_id = raw.headers["X-Request-Id"]
        message = await raw.parse()
    assert message.id == "msg_" + request_id.removeprefix("req_"), "the translated reply's own id"
    assert [block.type for block in message.content] == ["text"]
    sent = last_upstream_body(router, MINI)
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM[0]["text"]}
    assert not {"thinking", "top_k", "x_future_field", "system"} & set(sent)
    await assert_captured(
        router, request_id, cost_nano_usd=expected_cost_nano_usd(router, MINI, message.usage)
    )
    await client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_earlier_thinking_blocks_reach_the_upstream(router: RunningRouter) -> None:
    payer = router.payers[6]
    key = await funded_key(router, payer, amount_usd="1")
    client = anthropic_client(router, key)
    history: list[MessageParam] = [
        {"role": "user", "content": "What does a router do?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user asks about routers.", "signature": "sig_earlier"},
                {"type": "redacted_thinking", "data": "opaque-earlier"},
                {"type": "text", "text": "It forwards requests."},
            ],
        },
        {"role": "user", "content": "And a ledger?"},
    ]
    raw = await client.messages.with_raw_response.create(
        model=HAIKU, messages=history, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    message = await raw.parse()
    assert last_upstream_body(router, HAIKU)["messages"] == history
    assert message.content[0].type == "thinking"
    cost_nano_usd = expected_cost_nano_usd(router, HAIKU, message.usage)
    await assert_captured(router, raw.headers["X-Request-Id"], cost_nano_usd=cost_nano_usd)
    await client.close()
