"""Conversation state of `POST /v1/responses` with the official `openai` SDK: a keyed caller's responses are
stored (OpenAI's default), continued with `previous_response_id` — plain, streamed, and across a function
call — read back and deleted; other keys never see them; `store: false` keeps nothing; a caller without a
key is told that state needs one before anything is paid or held; an over-long conversation is a 400.

Method: the real app (router fixture) with the simulated providers upstream; what reached the upstream is
read from the simulator, so "continued" means the model was sent the whole conversation.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import FunctionToolParam

from proxy.api.app_keys import CATALOG
from proxy.settings import ResponsesSettings
from tests.e2e.api.support import funded_key, holds_of, openai_client
from tests.fixtures.app import RouterWith, RunningRouter

MODEL = "anthropic/claude-haiku-4-5"
WEATHER_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def upstream_messages(router: RunningRouter) -> list[dict[str, Any]]:
    """The messages of the last request the upstream (Anthropic's simulator) received for MODEL."""
    upstream_model = router.app[CATALOG].get(MODEL).upstream_model
    messages: list[dict[str, Any]] = router.simulator["primary"].state.last_bodies[upstream_model]["messages"]
    return messages


def texts_of(messages: list[dict[str, Any]]) -> list[str]:
    """Each message's text, in order (tool blocks as their kind)."""
    texts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.append(" ".join(block.get("text", block["type"]) for block in content))
    return texts


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_keyed_conversation_is_stored_continued_read_back_and_deleted(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        first = await client.responses.create(model=MODEL, input="Name a colour.")
        assert first.to_dict()["store"] is True  # Echoed; the SDK's model has no field for it.
        assert first.previous_response_id is None

        second = await client.responses.create(
            model=MODEL, input="Name another.", previous_response_id=first.id
        )
        assert second.previous_response_id == first.id
        assert texts_of(upstream_messages(router)) == ["Name a colour.", first.output_text, "Name another."]

        # A streamed turn is stored before its last event is read: continuing it at once finds it.
        async with client.responses.stream(
            model=MODEL, input="And a third.", previous_response_id=second.id
        ) as stream:
            third = await stream.get_final_response()
        fourth = await client.responses.create(
            model=MODEL, input="Which was first?", previous_response_id=third.id
        )
        assert texts_of(upstream_messages(router)) == [
            "Name a colour.",
            first.output_text,
            "Name another.",
            second.output_text,
            "And a third.",
            third.output_text,
            "Which was first?",
        ]

        read = await client.responses.retrieve(fourth.id)
        assert read.model_dump() == fourth.model_dump()
        await client.responses.delete(third.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(third.id)
        with pytest.raises(openai.BadRequestError) as gone:
            await client.responses.create(model=MODEL, input="More.", previous_response_id=third.id)
        assert gone.value.code == "previous_response_not_found"
        assert gone.value.param == "previous_response_id"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_function_call_is_answered_by_its_output_alone(router: RunningRouter) -> None:
    key = await funded_key(router, router.payers[7], amount_usd="1")
    async with openai_client(router, key) as client:
        asked = await client.responses.create(
            model=MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required"
        )
        (call,) = [item for item in asked.output if item.type == "function_call"]
        answered = await client.responses.create(
            model=MODEL,
            previous_response_id=asked.id,
            tools=[WEATHER_TOOL],
            input=[
                {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"c": 21})}
            ],
        )
    assert answered.output_text
    sent = upstream_messages(router)
    assert [message["role"] for message in sent] == ["user", "assistant", "user"]
    (tool_use,) = [block for block in sent[1]["content"] if block["type"] == "tool_use"]
    (tool_result,) = [block for block in sent[2]["content"] if block["type"] == "tool_result"]
    assert tool_use["id"] == tool_result["tool_use_id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stored_responses_belong_to_their_key_and_store_false_keeps_nothing(
    router: RunningRouter,
) -> None:
    owner = await funded_key(router, router.payers[7], amount_usd="1")
    other = await funded_key(router, router.payers[8], amount_usd="1")
    async with openai_client(router, owner) as client:
        stored = await client.responses.create(model=MODEL, input="Hello.", max_output_tokens=10)
        unstored = await client.responses.create(
            model=MODEL, input="Hello.", store=False, max_output_tokens=10
        )
        assert unstored.to_dict()["store"] is False
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(unstored.id)
    async with openai_client(router, other) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(stored.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.delete(stored.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model=MODEL, input="Go on.", previous_response_id=stored.id)
    assert refused.value.code == "previous_response_not_found"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("field", ["store", "previous_response_id"])
async def test_state_without_a_key_is_a_400_before_any_payment(router: RunningRouter, field: str) -> None:
    value: Any = True if field == "store" else "resp_1"
    response = await router.client.post("/v1/responses", json={"model": MODEL, "input": "Hi", field: value})
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["param"] == field
    assert "API key" in error["message"]
    assert "PAYMENT-REQUIRED" not in response.headers
    # Without state, the same caller is simply offered the x402 payment.
    offered = await router.client.post("/v1/responses", json={"model": MODEL, "input": "Hi"})
    assert offered.status == 402


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_conversation_longer_than_kept_is_a_400_and_holds_nothing(router_with: RouterWith) -> None:
    async with router_with(responses=ResponsesSettings(conversation_items_max=3)) as router:
        payer = router.payers[7]
        key = await funded_key(router, payer, amount_usd="1")
        async with openai_client(router, key) as client:
            first = await client.responses.create(model=MODEL, input="One.", max_output_tokens=10)
            holds_before = await holds_of(router, payer)
            with pytest.raises(openai.BadRequestError) as refused:
                await client.responses.create(
                    model=MODEL,
                    previous_response_id=first.id,
                    input=[{"role": "user", "content": "Two."}, {"role": "user", "content": "Three."}],
                )
        assert refused.value.code == "conversation_too_long"
        assert await holds_of(router, payer) == holds_before, "refused before any money is held"
