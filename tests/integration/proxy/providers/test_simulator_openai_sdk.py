"""The OpenAI simulator speaks the real format: the official `openai` package parses its answers.

Method: `openai.AsyncOpenAI(base_url=<simulator>/v1)` for chat (JSON, SSE with usage, tools) and embeddings
(the SDK asks for base64 by default); the SDK raises its own typed errors for injected faults.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.devnet.simulator import Simulators

TOOL: Any = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


def client_for(simulator: Simulators) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=simulator.openai_base_url, api_key="sk-sim", max_retries=0, timeout=5.0
    )


async def test_sdk_parses_chat_completion(simulator: Simulators) -> None:
    async with client_for(simulator) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=50
        )
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_sdk_parses_stream_with_usage_and_tools(simulator: Simulators) -> None:
    async with client_for(simulator) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "find it"}],
            tools=[TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or []
        if call.function is not None
    )
    assert arguments.startswith('{"q":')
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_sdk_parses_embeddings_base64(simulator: Simulators) -> None:
    async with client_for(simulator) as client:
        result = await client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=16)
    assert len(result.data[0].embedding) == 16
    assert abs(sum(value * value for value in result.data[0].embedding) - 1.0) < 1e-4


async def test_sdk_sees_rate_limit(simulator: Simulators) -> None:
    simulator.first.set_fault("gpt-4o-mini", error_count=1, error_status=429, retry_after_s=1)
    async with client_for(simulator) as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )


async def test_sdk_lists_models(simulator: Simulators) -> None:
    async with client_for(simulator) as client:
        page = await client.models.list()
    assert "gpt-4o-mini" in [model.id for model in page.data]
