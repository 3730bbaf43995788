"""Structured output through every adapter against the simulator: replies are instances of the schema.

Goal: a caller's JSON schema (response_format json_schema, or a tool's parameters) is honoured by the
simulated providers as by real ones, so `parse`-style clients (the OpenAI SDK, LangChain's
with_structured_output) work against the demo. Method: pydantic models give the schemas; each request goes
through MegaRouter's own adapter (OpenAI-compatible, Anthropic, Gemini) to the simulator speaking that
format, and the content or tool arguments must pass `Model.model_validate_json`. The wire-level cases
(Anthropic's output_config, Gemini's OpenAPI-subset responseSchema) post the provider's own body.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import aiohttp
import pydantic
import pytest
from pydantic import BaseModel, Field

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


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Reading(BaseModel):
    city: str
    temperature: float
    unit: Unit


class Forecast(BaseModel):
    readings: list[Reading] = Field(min_length=2, max_length=4)
    summary: Annotated[str, Field(max_length=40)]
    confidence: Annotated[int, Field(ge=0, le=100)]
    alert: Literal["none", "storm"] | None = None


class Step(BaseModel):
    explanation: str
    output: str


class MathReasoning(BaseModel):
    steps: list[Step]
    final_answer: str


SCHEMA_MODELS: list[type[BaseModel]] = [Reading, Forecast, MathReasoning]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make(kind: str, session: aiohttp.ClientSession, simulator: Simulators) -> ProviderAdapter:
    adapter_class, model = KINDS[kind]
    server = simulator["primary"]
    base_url = {
        "openai": server.openai_base_url,
        "anthropic": server.anthropic_base_url,
        "gemini": server.gemini_base_url,
    }
    endpoint = ProviderEndpoint(base_url=base_url[kind], api_key="sim-key", name=kind)
    return adapter_class(session, endpoint, upstream_model=model, timeout_s=5.0)


def schema_request(model: type[BaseModel], **fields: object) -> ChatCompletionRequest:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": model.model_json_schema(), "strict": True},
    }
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": f"Fill in a {model.__name__}."}],
        "response_format": response_format,
        **fields,
    }
    return ChatCompletionRequest.model_validate(body)


def tool_request(model: type[BaseModel], **fields: object) -> ChatCompletionRequest:
    tool = {"type": "function", "function": {"name": "record", "parameters": model.model_json_schema()}}
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": "Record it."}],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "record"}},
        **fields,
    }
    return ChatCompletionRequest.model_validate(body)


async def streamed_text(stream: AsyncIterator[StreamEvent]) -> str:
    return "".join(
        [e.chunk.choices[0].delta.content or "" async for e in stream if e.chunk and e.chunk.choices]
    )


@pytest.mark.parametrize("model", SCHEMA_MODELS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("kind", list(KINDS))
async def test_json_schema_reply_validates(
    kind: str, model: type[BaseModel], session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    whole = await adapter.chat(schema_request(model))
    content = whole.response.choices[0].message.content
    assert whole.response.choices[0].finish_reason == "stop"
    model.model_validate_json(content or "")
    assert await streamed_text(adapter.chat_stream(schema_request(model))) == content


@pytest.mark.parametrize("model", SCHEMA_MODELS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("kind", list(KINDS))
async def test_forced_tool_arguments_validate(
    kind: str, model: type[BaseModel], session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    result = await adapter.chat(tool_request(model))
    calls = result.response.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "record"
    model.model_validate_json(calls[0].function.arguments)
    events = [event async for event in adapter.chat_stream(tool_request(model))]
    arguments = "".join(
        call.function.arguments or ""
        for e in events
        if e.chunk and e.chunk.choices
        for call in e.chunk.choices[0].delta.tool_calls or []
        if call.function is not None
    )
    assert json.loads(arguments) == json.loads(calls[0].function.arguments)


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_json_schema_reply_stops_at_max_tokens(
    kind: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    adapter = make(kind, session, simulator)
    whole = await adapter.chat(schema_request(Forecast))
    full_text = whole.response.choices[0].message.content or ""
    cut = await adapter.chat(schema_request(Forecast, max_tokens=5))
    assert cut.response.choices[0].finish_reason == "length"
    assert cut.usage.output_tokens <= 5
    cut_text = cut.response.choices[0].message.content or ""
    assert cut_text
    assert full_text.startswith(cut_text)
    with pytest.raises(pydantic.ValidationError):
        Forecast.model_validate_json(cut_text)


async def test_unsatisfiable_schema_is_a_bad_request(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    impossible = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 2}},
        "required": ["n"],
    }
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": impossible}},
    }
    with pytest.raises(UpstreamError) as raised:
        await make("openai", session, simulator).chat(ChatCompletionRequest.model_validate(body))
    assert raised.value.kind == "bad_request"


@pytest.mark.parametrize("field", ["output_config", "output_format"])
async def test_anthropic_structured_outputs_on_the_wire(
    field: str, session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    output_format = {"type": "json_schema", "schema": Forecast.model_json_schema()}
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Forecast, please."}],
        field: {"format": output_format} if field == "output_config" else output_format,
    }
    headers = {"x-api-key": "sim-key", "anthropic-version": "2023-06-01"}
    url = f"{simulator['primary'].anthropic_base_url}/v1/messages"
    async with session.post(url, json=body, headers=headers) as response:
        assert response.status == 200
        reply = await response.json()
    assert reply["stop_reason"] == "end_turn"
    Forecast.model_validate_json(reply["content"][0]["text"])


async def test_gemini_openapi_response_schema_on_the_wire(
    session: aiohttp.ClientSession, simulator: Simulators
) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "temperature": {"type": "NUMBER"},
            "unit": {"type": "STRING", "format": "enum", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "temperature", "unit"],
    }
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    url = f"{simulator['primary'].gemini_base_url}/v1beta/models/gemini-2.0-flash:generateContent"
    async with session.post(url, json=body, headers={"x-goog-api-key": "sim-key"}) as response:
        assert response.status == 200
        reply = await response.json()
    Reading.model_validate_json(reply["candidates"][0]["content"]["parts"][0]["text"])
