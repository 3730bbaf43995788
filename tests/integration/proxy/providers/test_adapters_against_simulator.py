"""Every adapter (OpenAI-compatible, Anthropic, Gemini) against the simulator speaking its format.

Method: the same OpenAI-format requests through each adapter; the answers must agree in shape, usage
must be reported (not estimated), streamed text must equal non-streamed text, tools must round-trip,
and injected faults must come out as the right UpstreamError kind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.devnet.simulator import Simulators
from proxy.openai_types import ChatCompletionRequest
from proxy.providers import (
    AnthropicAdapter,
    GeminiAdapter,
    OpenAICompatibleAdapter,
    ProviderAdapter,
    ProviderEndpoint,
    StreamEvent,
    UpstreamError,
)

KINDS = {
    "openai": (OpenAICompatibleAdapter, "gpt-4o-mini"),
    "anthropic": (AnthropicAdapter, "claude-3-5-haiku-latest"),
    "gemini": (GeminiAdapter, "gemini-2.0-flash"),
}
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Find a fact",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators, *, timeout_s: float = 5.0
) -> ProviderAdapter:
    adapter_class, model = KINDS[kind]
    server = simulator["primary"]
    base_url = {
        "openai": server.openai_base_url,
        "anthropic": server.anthropic_base_url,
        "gemini": server.gemini_base_url,
    }
    endpoint = ProviderEndpoint(base_url=base_url[kind], api_key="sim-key", name=kind)
    return adapter_class(session, endpoint, upstream_model=model, timeout_s=timeout_s)


def request(**fields: object) -> ChatCompletionRequest:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about routing"},
    ]
    return ChatCompletionRequest.model_validate({"model": "any", "messages": messages, **fields})


async def drain(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_chat_and_stream_agree(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    whole = await adapter.chat(request(max_tokens=100))
    events = await drain(adapter.chat_stream(request(max_tokens=100)))
    text = "".join(e.chunk.choices[0].delta.content or "" for e in events if e.chunk and e.chunk.choices)
    assert whole.response.choices[0].message.content == text
    assert whole.response.choices[0].finish_reason == "stop"
    assert events[-1].usage == whole.usage
    assert whole.usage.input_tokens > 0
    assert whole.usage.output_tokens > 0
    assert not whole.usage.estimated


@pytest.mark.parametrize("kind", list(KINDS))
async def test_max_tokens_honoured(kind: str, session: aiohttp.ClientSession, simulator: Simulators) -> None:
    result = await make(kind, session, simulator).chat(request(max_completion_tokens=4))
    assert result.usage.output_tokens == 4
    assert result.response.choices[0].finish_reason == "length"


@pytest.mark.parametrize("kind", list(KINDS))
async def test_tool_loop(kind: str, session: aiohttp.ClientSession, simulator: Simulators) -> None:
    adapter = make(kind, session, simulator)
    first = await adapter.chat(request(tools=[TOOL]))
    calls = first.response.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "lookup"
    assert first.response.choices[0].finish_reason == "tool_calls"
    streamed = await drain(adapter.chat_stream(request(tools=[TOOL])))
    fragments = [
        call
        for e in streamed
        if e.chunk and e.chunk.choices
        for call in e.chunk.choices[0].delta.tool_calls or []
    ]
    assert fragments[0].function is not None
    assert fragments[0].function.name == "lookup"
    streamed_arguments = "".join((c.function.arguments or "") if c.function else "" for c in fragments)
    assert json.loads(streamed_arguments) == json.loads(calls[0].function.arguments)
    follow_up = [
        *request(tools=[TOOL]).messages,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump() for call in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"answer": 42}'},
    ]
    second = await adapter.chat(
        ChatCompletionRequest.model_validate({"model": "x", "messages": follow_up, "tools": [TOOL]})
    )
    assert second.response.choices[0].message.content
    assert second.response.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("kind", list(KINDS))
async def test_rate_limit_retry_after(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    simulator["primary"].set_fault("*", error_count=1, error_status=429, retry_after_s=5)
    with pytest.raises(UpstreamError) as caught:
        await make(kind, session, simulator).chat(request())
    assert (caught.value.kind, caught.value.status, caught.value.retry_after_s) == ("rate_limited", 429, 5)
    assert caught.value.failover_allowed


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("status", "failover"), [(500, True), (503, True), (400, False), (404, False)])
async def test_status_mapping(
    kind: str, status: int, failover: bool, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    simulator["primary"].set_fault("*", error_count=1, error_status=status)
    with pytest.raises(UpstreamError) as caught:
        await make(kind, session, simulator).chat(request())
    assert caught.value.status == status
    assert caught.value.failover_allowed is failover


@pytest.mark.parametrize("kind", list(KINDS))
async def test_stream_cut_and_error_event(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    simulator["primary"].set_fault("*", cut_stream_after_tokens=2)
    with pytest.raises(UpstreamError) as cut:
        await drain(adapter.chat_stream(request()))
    assert cut.value.kind == "stream_interrupted"
    simulator["primary"].set_fault("*", stream_error_after_tokens=2)
    with pytest.raises(UpstreamError) as errored:
        await drain(adapter.chat_stream(request()))
    assert errored.value.failover_allowed


@pytest.mark.parametrize("kind", list(KINDS))
async def test_stream_stall_times_out(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    simulator["primary"].set_fault("*", time_to_first_token_ms=2000)
    with pytest.raises(UpstreamError) as caught:
        await drain(make(kind, session, simulator, timeout_s=0.3).chat_stream(request()))
    assert caught.value.kind == "timeout"


async def test_anthropic_prompt_cache(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    """Explicit cache breakpoints: a write the first time, a read afterwards (sent raw, the adapter does not
    set cache_control)."""
    url = f"{simulator['primary'].anthropic_base_url}/v1/messages"
    system = [{"type": "text", "text": "Policy. " * 800, "cache_control": {"type": "ephemeral"}}]
    body = {
        "model": "claude-x",
        "max_tokens": 10,
        "system": system,
        "messages": [{"role": "user", "content": "q"}],
    }
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    usages = []
    for _ in range(2):
        async with session.post(url, json=body, headers=headers) as response:
            usages.append((await response.json())["usage"])
    assert usages[0]["cache_creation_input_tokens"] > 1000
    assert usages[0]["cache_read_input_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == usages[0]["cache_creation_input_tokens"]


async def test_anthropic_requires_max_tokens(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    url = f"{simulator['primary'].anthropic_base_url}/v1/messages"
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "q"}]}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    async with session.post(url, json=body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_gemini_thinking_model_reports_reasoning(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    endpoint = ProviderEndpoint(base_url=simulator["primary"].gemini_base_url, api_key="k")
    adapter = GeminiAdapter(session, endpoint, upstream_model="gemini-2.5-flash", timeout_s=5.0)
    result = await adapter.chat(request())
    assert result.usage.reasoning_tokens > 0
    assert result.usage.output_tokens > result.usage.reasoning_tokens


async def test_control_endpoint_over_http(session: aiohttp.ClientSession, simulator: Simulators) -> None:
    control = simulator["secondary"].control_url
    async with session.post(
        f"{control}/faults", json={"model": "m", "error_count": 1, "error_status": 503}
    ) as r:
        assert r.status == 200
    async with session.post(f"{control}/faults", json={"model": "m", "bogus": 1}) as r:
        assert r.status == 400
    async with session.get(f"{control}/faults") as r:
        assert (await r.json())["faults"]["m"]["error_status"] == 503
    url = f"{simulator['secondary'].openai_base_url}/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    async with session.post(url, json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 503
    async with session.get(f"{control}/stats") as r:
        assert (await r.json())["models"]["m"] == {"requests": 1, "injected_errors": 1}
    async with session.post(f"{control}/reset") as r:
        assert r.status == 200
    async with session.get(f"{control}/faults") as r:
        assert (await r.json())["faults"] == {}


# A tool whose arguments alone run to thousands of tokens: before the fix, the simulator returned the whole
# call whatever max_tokens said (6,904 output tokens for max_tokens=1 were seen through the router).
BIG_TOOL = {
    "type": "function",
    "function": {
        "name": "file",
        "parameters": {
            "type": "object",
            "properties": {f"field_{index}": {"type": "string"} for index in range(2_000)},
        },
    },
}


@pytest.mark.parametrize("max_tokens", [1, 3, 40])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_tool_call_stops_at_max_tokens(
    kind: str, max_tokens: int, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    asked = request(tools=[BIG_TOOL], tool_choice="required", max_tokens=max_tokens)
    whole = await adapter.chat(asked)
    events = await drain(adapter.chat_stream(asked))
    assert whole.usage.output_tokens <= max_tokens
    assert not whole.usage.estimated
    assert whole.response.choices[0].finish_reason == "length"
    # The second request's big prompt prefix is served from cache, so only output is compared.
    assert events[-1].usage is not None
    assert events[-1].usage.output_tokens == whole.usage.output_tokens


@pytest.mark.parametrize("kind", list(KINDS))
async def test_over_reported_usage_knob(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    honest = await adapter.chat(request(max_tokens=4))
    simulator["primary"].set_fault("*", output_tokens_over_reported=5_000)
    inflated = await adapter.chat(request(max_tokens=4))
    streamed = await drain(adapter.chat_stream(request(max_tokens=4)))
    assert inflated.usage.output_tokens == honest.usage.output_tokens + 5_000
    assert streamed[-1].usage == inflated.usage
