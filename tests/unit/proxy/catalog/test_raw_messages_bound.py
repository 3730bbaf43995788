"""The prompt bound of a Messages body passed through untranslated covers everything Anthropic may bill.

Method: bodies with what the translation drops (cache_control, thinking blocks, unknown fields, images
inside tool results), compared with their UTF-8 size and with the bound of the same request translated.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy.anthropic_types import MessagesRequest
from proxy.catalog.pricing import (
    IMAGE_TOKENS_MAX,
    STRUCTURED_OUTPUT_OVERHEAD_TOKENS,
    prompt_tokens_upper_bound,
    raw_messages_prompt_tokens_upper_bound,
)
from proxy.providers.anthropic_inbound import chat_request_from_messages

PIXEL = "iVBORw0KGgo="  # A few bytes of base64 that a provider may still bill as a whole image.


def body_with(**fields: Any) -> dict[str, Any]:
    return {"model": "anthropic/claude-haiku-4-5", "max_tokens": 100, **fields}


def utf8_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def translated_bound(body: dict[str, Any]) -> int:
    chat = chat_request_from_messages(MessagesRequest.model_validate(body))
    messages = [message.model_dump(mode="json", exclude_none=True) for message in chat.messages]
    tools = [tool.model_dump(mode="json", exclude_none=True) for tool in chat.tools or []]
    return prompt_tokens_upper_bound(messages, tools=tools or None)


def test_every_byte_of_the_body_counts_what_translation_drops_included() -> None:
    plain = body_with(messages=[{"role": "user", "content": "hello"}])
    rich = body_with(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "hello"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "long thought " * 50, "signature": "sig" * 20},
                    {"type": "redacted_thinking", "data": "opaque" * 30},
                    {"type": "text", "text": "hi"},
                ],
            },
            {"role": "user", "content": "again"},
        ],
        top_k=5,
        future_field={"anything": "x" * 200},
    )
    assert raw_messages_prompt_tokens_upper_bound(plain) >= utf8_bytes(plain)
    assert raw_messages_prompt_tokens_upper_bound(rich) >= utf8_bytes(rich)
    # The thinking history and the unknown field are dropped by translation, never by this bound.
    assert raw_messages_prompt_tokens_upper_bound(rich) > translated_bound(rich) + utf8_bytes(
        rich["future_field"]
    )


def test_images_count_at_their_largest_budget_wherever_they_sit() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    in_turn = body_with(messages=[{"role": "user", "content": [image]}])
    in_tool_result = body_with(
        messages=[
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [image]}]},
        ]
    )
    assert raw_messages_prompt_tokens_upper_bound(in_turn) >= IMAGE_TOKENS_MAX + utf8_bytes(in_turn)
    assert raw_messages_prompt_tokens_upper_bound(in_tool_result) >= IMAGE_TOKENS_MAX + utf8_bytes(
        in_tool_result
    )


def test_tools_and_thinking_add_the_providers_framing() -> None:
    messages = [{"role": "user", "content": "hello"}]
    plain = body_with(messages=messages)
    thinking = body_with(messages=messages, thinking={"type": "enabled", "budget_tokens": 2048})
    tool = {"name": "f", "input_schema": {"type": "object"}}
    with_tools = body_with(messages=messages, tools=[tool])
    base = raw_messages_prompt_tokens_upper_bound(plain)
    assert raw_messages_prompt_tokens_upper_bound(thinking) > base + STRUCTURED_OUTPUT_OVERHEAD_TOKENS
    assert raw_messages_prompt_tokens_upper_bound(with_tools) >= translated_bound(with_tools)


TEXT = st.text(min_size=0, max_size=200)


@given(system=TEXT, turns=st.lists(TEXT, min_size=1, max_size=6))
def test_never_below_the_translated_bound(system: str, turns: list[str]) -> None:
    messages = [
        {
            "role": "user" if index % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": text or "."}],
        }
        for index, text in enumerate(turns)
    ]
    body = body_with(system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}])
    body["messages"] = messages
    assert raw_messages_prompt_tokens_upper_bound(body) >= translated_bound(body)
    assert raw_messages_prompt_tokens_upper_bound(body) >= utf8_bytes(body)
