"""The simulated OpenAI API: `POST /v1/chat/completions` (JSON, SSE), `/v1/embeddings`, `GET /v1/models`.

Answers exactly as OpenAI's wire format does (the official `openai` package parses it in the tests):
`Authorization: Bearer`, `chat.completion` objects, `chat.completion.chunk` SSE with `data: [DONE]`, the
usage chunk with empty choices when `stream_options.include_usage` is set, tool calls streamed as
argument fragments, OpenAI error bodies, cached prompt prefixes reported as `cached_tokens`. A
`json_schema` response format gets an instance of its schema as content, and tool calls carry arguments
that validate against the tool's parameters (a schema with no instance is refused with a 400, as OpenAI
refuses schemas it cannot compile).
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import struct
import time
from typing import Any

import pydantic
from aiohttp import web

from proxy.devnet.simulator.common import (
    SIMULATOR_STATE,
    Pacer,
    SimulatorState,
    before_answer,
    cut_connection,
    json_error,
    read_json_object,
)
from proxy.devnet.simulator.faults import FaultSpec
from proxy.devnet.simulator.replies import ReplyPlan, ToolSpec, plan_reply, seed_for
from proxy.devnet.simulator.schema_instances import SchemaUnsatisfiable
from proxy.openai_types import ChatCompletionRequest, EmbeddingsRequest, NamedToolChoice
from proxy.providers.tokens import estimate_message_tokens, estimate_prompt_tokens, estimate_text_tokens

__all__ = ["DEFAULT_EMBEDDING_DIMENSIONS", "add_openai_routes", "is_reasoning_model", "openai_error"]

DEFAULT_EMBEDDING_DIMENSIONS = 1536
ARGUMENT_PIECE_CHARS = 8
REASONING_MODEL = re.compile(r"(^|/)o\d|reason|think")
ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}


def is_reasoning_model(model: str) -> bool:
    return REASONING_MODEL.search(model) is not None


def openai_error(
    status: int, message: str, retry_after_s: int | None = None, *, code: str | None = None
) -> web.Response:
    error_type, default_code = ERROR_TYPES.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code or default_code}}
    return json_error(status, body, retry_after_s=retry_after_s)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None


def _chosen_tool(parsed: ChatCompletionRequest, seed: int) -> ToolSpec | None:
    if not parsed.tools or parsed.tool_choice == "none":
        return None
    tools = {tool.function.name: tool.function.parameters or {} for tool in parsed.tools}
    if isinstance(parsed.tool_choice, NamedToolChoice):
        name = parsed.tool_choice.function.name
        return ToolSpec(name, tools[name]) if name in tools else None
    # A model given tools calls one when the user just spoke, and answers in text after a tool result.
    if parsed.tool_choice != "required" and parsed.messages[-1].role != "user":
        return None
    name = list(tools)[seed % len(tools)]
    return ToolSpec(name, tools[name])


def _response_schema(parsed: ChatCompletionRequest) -> dict[str, Any] | None:
    response_format = parsed.response_format
    if (
        response_format is None
        or response_format.type != "json_schema"
        or response_format.json_schema is None
    ):
        return None
    return response_format.json_schema.schema_ or {"type": "object"}


def _usage(state: SimulatorState, parsed: ChatCompletionRequest, plan: ReplyPlan) -> dict[str, Any]:
    prompt_tokens = estimate_prompt_tokens(parsed)
    prefix_tokens = prompt_tokens - estimate_message_tokens(parsed.messages[-1])
    prefix = [parsed.model, [m.model_dump(mode="json") for m in parsed.messages[:-1]]]
    cached = state.prompt_cache.cached_tokens(f"openai:{seed_for(prefix)}", prefix_tokens)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": prompt_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(plan: ReplyPlan) -> dict[str, Any]:
    assert plan.tool_call is not None
    name, arguments = plan.tool_call
    return {
        "id": f"call_{plan.tool_call_id}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[SIMULATOR_STATE]
    if not state.key_accepted(_bearer(request)):
        return openai_error(401, "Incorrect API key provided.")
    body = await read_json_object(request)
    if body is None:
        return openai_error(400, "We could not parse the JSON body of your request.")
    try:
        parsed = ChatCompletionRequest.model_validate(body)
    except pydantic.ValidationError as error:
        return openai_error(400, f"Invalid request: {error.errors()[0]['msg']}")
    state.record_body(parsed.model, body)
    spec, failure = await before_answer(state, parsed.model, openai_error)
    if failure is not None:
        return failure
    prompt_tokens = estimate_prompt_tokens(parsed)
    if prompt_tokens + (parsed.output_tokens_max or 0) > state.context_window_tokens:
        message = (
            f"This model's maximum context length is {state.context_window_tokens} tokens. However, you "
            f"requested {prompt_tokens + (parsed.output_tokens_max or 0)} tokens."
        )
        return openai_error(400, message, code="context_length_exceeded")
    seed = seed_for([parsed.model, body["messages"], body.get("seed")])
    try:
        plan = plan_reply(
            seed=seed,
            output_tokens_max=parsed.output_tokens_max,
            tool=_chosen_tool(parsed, seed),
            reasoning=is_reasoning_model(parsed.model),
            json_object=parsed.response_format is not None and parsed.response_format.type != "text",
            response_schema=_response_schema(parsed),
            tokens_over_reported=spec.output_tokens_over_reported,
        )
    except SchemaUnsatisfiable as error:
        return openai_error(400, f"Invalid schema: {error}")
    usage = _usage(state, parsed, plan)
    completion_id = f"chatcmpl-sim{seed:016x}"
    if parsed.stream:
        return await _stream(request, state, spec, parsed, plan, usage, completion_id)
    await Pacer(state, spec).whole(plan.output_tokens)
    reply: dict[str, Any] = {"role": "assistant", "content": plan.text or None, "refusal": None}
    if plan.tool_call is not None:
        reply["tool_calls"] = [_tool_call(plan)]
    return web.json_response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": plan.finish}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
        }
    )


async def _stream(
    request: web.Request,
    state: SimulatorState,
    spec: FaultSpec,
    parsed: ChatCompletionRequest,
    plan: ReplyPlan,
    usage: dict[str, Any],
    completion_id: str,
) -> web.StreamResponse:
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    created = int(time.time())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def send(delta: dict[str, Any], finish: str | None = None) -> None:
        chunk: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": parsed.model,
            "system_fingerprint": "fp_simulator",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            chunk["usage"] = None
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    pacer = Pacer(state, spec)
    await send({"role": "assistant", "content": "", "refusal": None})
    if plan.tool_call is not None:
        call = _tool_call(plan)
        arguments = call["function"]["arguments"]
        head = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"]},
        }
        head["function"]["arguments"] = ""
        pieces = [
            arguments[i : i + ARGUMENT_PIECE_CHARS] for i in range(0, len(arguments), ARGUMENT_PIECE_CHARS)
        ]
        deltas: list[dict[str, Any]] = [{"tool_calls": [head]}]
        deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]
    else:
        deltas = [{"content": piece} for piece in plan.pieces]
    for sent, delta in enumerate(deltas):
        if spec.cut_stream_after_tokens is not None and sent >= spec.cut_stream_after_tokens:
            cut_connection(request)
            return response
        if spec.stream_error_after_tokens is not None and sent >= spec.stream_error_after_tokens:
            error = {"error": {"message": "The server had an error (simulated)", "type": "server_error"}}
            await response.write(f"data: {json.dumps(error)}\n\n".encode())
            return response
        await pacer.next_token()
        await send(delta)
    await send({}, plan.finish)
    if include_usage:
        final = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": parsed.model,
            "system_fingerprint": "fp_simulator",
            "choices": [],
            "usage": usage,
        }
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


def _embedding_inputs(parsed: EmbeddingsRequest) -> list[tuple[Any, int]]:
    """(seed material, tokens) per input: texts are estimated, token arrays counted."""
    raw = parsed.input
    if isinstance(raw, str):
        return [(raw, estimate_text_tokens(raw))]
    if raw and all(isinstance(item, int) for item in raw):
        return [(raw, len(raw))]
    items: list[tuple[Any, int]] = []
    for item in raw:
        items.append((item, estimate_text_tokens(item) if isinstance(item, str) else len(item)))  # type: ignore[arg-type]
    return items


def _vector(seed: int, dimensions: int) -> list[float]:
    generator = random.Random(seed)
    values = [generator.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    if not state.key_accepted(_bearer(request)):
        return openai_error(401, "Incorrect API key provided.")
    body = await read_json_object(request)
    try:
        parsed = EmbeddingsRequest.model_validate(body)
    except pydantic.ValidationError as error:
        return openai_error(400, f"Invalid request: {error.errors()[0]['msg']}")
    _, failure = await before_answer(state, parsed.model, openai_error)
    if failure is not None:
        return failure
    dimensions = parsed.dimensions or DEFAULT_EMBEDDING_DIMENSIONS
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, (material, item_tokens) in enumerate(_embedding_inputs(parsed)):
        tokens += item_tokens
        vector = _vector(seed_for([parsed.model, material]), dimensions)
        encoded: list[float] | str = vector
        if parsed.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response({"object": "list", "data": data, "model": parsed.model, "usage": usage})


async def models(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    data = [{"id": model, "object": "model", "created": 0, "owned_by": state.name} for model in state.models]
    return web.json_response({"object": "list", "data": data})


def add_openai_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
