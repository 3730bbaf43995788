"""The OpenAI-compatible adapter against the OpenAI simulator: answers, usage, tools, streaming, faults.

Method: real HTTP to the session's simulated providers; faults injected per test through the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.devnet.simulator import Simulators
from proxy.openai_types import ChatCompletionRequest, EmbeddingsRequest
from proxy.providers import (
    OpenAICompatibleAdapter,
    ProviderEndpoint,
    StreamEvent,
    TokenUsage,
    UpstreamError,
    estimate_prompt_tokens,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def adapter_for(
    session: aiohttp.ClientSession, simulator: Simulators, *, name: str = "primary", api_key: str = "sk-test"
) -> OpenAICompatibleAdapter:
    endpoint = ProviderEndpoint(base_url=simulator[name].openai_base_url, api_key=api_key, name=name)
    return OpenAICompatibleAdapter(session, endpoint, upstream_model="gpt-4o-mini", timeout_s=5.0)


async def collect(stream: AsyncIterator[StreamEvent], seen: list[StreamEvent]) -> None:
    async for event in stream:
        seen.append(event)


def hello(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], **fields}
    )


async def test_chat_answers_deterministically_with_usage(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = adapter_for(session, simulator)
    first = await adapter.chat(hello())
    second = await adapter.chat(hello())
    assert first.response.choices[0].message.content
    assert first.response.choices[0].message.content == second.response.choices[0].message.content
    assert first.response.model == "gpt-4o-mini"  # The upstream model was sent, not the caller's id.
    assert first.usage.input_tokens == estimate_prompt_tokens(hello())
    assert first.usage.output_tokens >= 1
    assert not first.usage.estimated


async def test_max_tokens_caps_completion_and_reports_length(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    result = await adapter_for(session, simulator).chat(hello(max_completion_tokens=3))
    assert result.usage.output_tokens == 3
    assert result.response.choices[0].finish_reason == "length"


async def test_tool_call_round_trip(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    result = await adapter_for(session, simulator).chat(hello(tools=[WEATHER_TOOL]))
    message = result.response.choices[0].message
    assert result.response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_weather"
    assert "city" in message.tool_calls[0].function.arguments


async def test_stream_yields_chunks_then_usage(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    adapter = adapter_for(session, simulator)
    events: list[StreamEvent] = [event async for event in adapter.chat_stream(hello())]
    whole = await adapter.chat(hello())
    text = "".join(e.chunk.choices[0].delta.content or "" for e in events if e.chunk and e.chunk.choices)
    assert text == whole.response.choices[0].message.content
    assert events[-1].kind == "usage"
    assert events[-1].usage == whole.usage
    assert all(e.chunk.usage is None for e in events if e.chunk is not None)


async def test_stream_tool_call_fragments(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    events = [e async for e in adapter_for(session, simulator).chat_stream(hello(tools=[WEATHER_TOOL]))]
    arguments = "".join(
        (call.function.arguments or "") if call.function else ""
        for e in events
        if e.chunk and e.chunk.choices
        for call in e.chunk.choices[0].delta.tool_calls or []
    )
    assert arguments.startswith('{"city":')
    finishes = [e.chunk.choices[0].finish_reason for e in events if e.chunk and e.chunk.choices]
    assert finishes[-1] == "tool_calls"


async def test_rate_limit_keeps_retry_after(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    simulator["primary"].set_fault("gpt-4o-mini", error_count=1, error_status=429, retry_after_s=7)
    with pytest.raises(UpstreamError) as caught:
        await adapter_for(session, simulator).chat(hello())
    assert caught.value.kind == "rate_limited"
    assert caught.value.status == 429
    assert caught.value.retry_after_s == 7
    assert caught.value.failover_allowed
    assert (await adapter_for(session, simulator).chat(hello())).usage.output_tokens > 0  # Only one failed.


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "server_error"), (503, "server_error"), (529, "overloaded")]
)
async def test_server_errors_allow_failover(
    session: aiohttp.ClientSession, simulator: Simulators, status: int, kind: str
) -> None:
    simulator["primary"].set_fault("*", error_count=1, error_status=status)
    with pytest.raises(UpstreamError) as caught:
        await adapter_for(session, simulator).chat(hello())
    assert (caught.value.kind, caught.value.status, caught.value.failover_allowed) == (kind, status, True)


async def test_bad_key_is_auth_and_not_failover(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await adapter_for(session, simulator, api_key="").chat(hello())
    assert (caught.value.kind, caught.value.status, caught.value.failover_allowed) == ("auth", 401, False)


async def test_context_length_is_not_failover(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    with pytest.raises(UpstreamError) as caught:
        await adapter_for(session, simulator).chat(hello(max_tokens=200_000))
    assert caught.value.kind == "context_length"
    assert not caught.value.failover_allowed


async def test_hang_times_out(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    simulator["primary"].set_fault("gpt-4o-mini", hang=True)
    endpoint = ProviderEndpoint(base_url=simulator["primary"].openai_base_url, api_key="k")
    adapter = OpenAICompatibleAdapter(session, endpoint, upstream_model="gpt-4o-mini", timeout_s=0.2)
    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(hello())
    assert caught.value.kind == "timeout"
    assert caught.value.failover_allowed


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    endpoint = ProviderEndpoint(base_url="http://127.0.0.1:9/v1", api_key="k")
    adapter = OpenAICompatibleAdapter(session, endpoint, upstream_model="gpt-4o-mini", timeout_s=2.0)
    with pytest.raises(UpstreamError) as caught:
        await adapter.chat(hello())
    assert caught.value.kind == "connection"


async def test_stream_cut_midway_is_interrupted(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    simulator["primary"].set_fault("gpt-4o-mini", cut_stream_after_tokens=3)
    seen: list[StreamEvent] = []
    with pytest.raises(UpstreamError) as caught:
        await collect(adapter_for(session, simulator).chat_stream(hello()), seen)
    assert caught.value.kind == "stream_interrupted"
    assert 1 <= len(seen) <= 4


async def test_stream_error_event_is_server_error(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    simulator["primary"].set_fault("gpt-4o-mini", stream_error_after_tokens=2)
    with pytest.raises(UpstreamError) as caught:
        async for _ in adapter_for(session, simulator).chat_stream(hello()):
            pass
    assert caught.value.kind == "server_error"


async def test_failover_target_is_independent(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    simulator["primary"].set_fault("*", error_rate=1.0, error_status=503)
    with pytest.raises(UpstreamError):
        await adapter_for(session, simulator, name="primary").chat(hello())
    result = await adapter_for(session, simulator, name="secondary").chat(hello())
    assert result.usage.input_tokens > 0
    assert simulator["primary"].stats()["gpt-4o-mini"] == {"requests": 1, "injected_errors": 1}


async def test_cached_prefix_reports_cached_tokens(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    long_system = "You are a careful assistant. " * 200
    messages = [{"role": "system", "content": long_system}, {"role": "user", "content": "first"}]
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": messages})
    adapter = adapter_for(session, simulator)
    cold = await adapter.chat(request)
    warm = await adapter.chat(request.model_copy(update={"messages": [*request.messages]}))
    assert cold.usage.cached_input_tokens == 0
    assert warm.usage.cached_input_tokens > 1000
    assert warm.usage.cached_input_tokens % 128 == 0


async def test_embeddings(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    endpoint = ProviderEndpoint(base_url=simulator["primary"].openai_base_url, api_key="k")
    adapter = OpenAICompatibleAdapter(
        session, endpoint, upstream_model="text-embedding-3-small", timeout_s=5.0
    )
    request = EmbeddingsRequest(model="x", input=["hello world", "second text"], dimensions=8)
    result = await adapter.embeddings(request)
    assert len(result.response.data) == 2
    assert len(result.response.data[0].embedding) == 8
    assert result.usage == TokenUsage(input_tokens=result.response.usage.prompt_tokens, output_tokens=0)
    assert result.usage.input_tokens == 3 + 3
