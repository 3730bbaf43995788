"""The simulated Gemini API: `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent` (`?alt=sse` for server-sent events; without it, one JSON array, as Google does).

Authenticated with `x-goog-api-key` (or `?key=`); roles user/model, parts with text, inlineData,
functionCall, functionResponse; `systemInstruction`; `generationConfig.maxOutputTokens`; usageMetadata
with promptTokenCount (including cachedContentTokenCount for a repeated prefix of 1024+ tokens),
candidatesTokenCount, thoughtsTokenCount for thinking models (2.5 and "think" names), totalTokenCount.
Errors as google.rpc.Status with a RetryInfo detail on 429. Structured output: with
`responseMimeType: application/json`, a `responseJsonSchema` (JSON Schema) or `responseSchema` (the
OpenAPI subset, "OBJECT" and all) makes the text an instance of it; functionCall `args` validate against
the declaration's `parametersJsonSchema` or `parameters`.
"""

from __future__ import annotations

import json
from typing import Any

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
from proxy.devnet.simulator.openai_api import is_reasoning_model
from proxy.devnet.simulator.replies import ReplyPlan, ToolSpec, plan_reply, seed_for
from proxy.devnet.simulator.schema_instances import SchemaUnsatisfiable
from proxy.providers.tokens import estimate_text_tokens

__all__ = ["add_gemini_routes", "gemini_error"]

IMAGE_TOKENS = 258  # Gemini's fixed count for an image up to 384 px a side.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def gemini_error(status: int, message: str, retry_after_s: int | None = None) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if retry_after_s is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after_s}s"}
        ]
    return json_error(status, {"error": error})


def _part_tokens(part: dict[str, Any]) -> int:
    if "text" in part:
        return estimate_text_tokens(str(part["text"]))
    if "inlineData" in part or "fileData" in part:
        return IMAGE_TOKENS
    return estimate_text_tokens(json.dumps(part))


def _content_tokens(content: dict[str, Any]) -> int:
    return 3 + sum(_part_tokens(part) for part in content.get("parts") or [])


def _is_thinking(model: str) -> bool:
    return is_reasoning_model(model) or "2.5" in model


def _chosen_tool(body: dict[str, Any], seed: int) -> ToolSpec | None:
    tools = {
        declaration["name"]: declaration.get("parametersJsonSchema") or declaration.get("parameters") or {}
        for tool in body.get("tools") or []
        for declaration in tool.get("functionDeclarations") or []
    }
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    if not tools or mode == "NONE":
        return None
    allowed = [name for name in config.get("allowedFunctionNames") or [] if name in tools] or list(tools)
    last_parts = body["contents"][-1].get("parts") or []
    answering_tool = any("functionResponse" in part for part in last_parts)
    if mode != "ANY" and answering_tool:
        return None
    name = allowed[seed % len(allowed)]
    return ToolSpec(name, tools[name])


def _response_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    return schema if isinstance(schema, dict) else None


def _usage(state: SimulatorState, model: str, body: dict[str, Any], plan: ReplyPlan) -> dict[str, Any]:
    system = body.get("systemInstruction")
    system_tokens = _content_tokens(system) if isinstance(system, dict) else 0
    tools_tokens = sum(estimate_text_tokens(json.dumps(tool)) for tool in body.get("tools") or [])
    contents = body["contents"]
    prompt = system_tokens + tools_tokens + sum(_content_tokens(content) for content in contents)
    prefix_tokens = prompt - _content_tokens(contents[-1])
    prefix_key = f"gemini:{seed_for([model, system, body.get('tools'), contents[:-1]])}"
    cached = state.prompt_cache.cached_tokens(prefix_key, prefix_tokens)
    candidates = plan.output_tokens - plan.reasoning_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + plan.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
    if plan.reasoning_tokens:
        usage["thoughtsTokenCount"] = plan.reasoning_tokens
    return usage


def _validate(
    request: web.Request, state: SimulatorState, body: dict[str, Any] | None
) -> web.Response | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not state.key_accepted(key):
        return gemini_error(401 if not key else 400, "API key not valid. Please pass a valid API key.")
    if body is None:
        return gemini_error(400, "Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return gemini_error(400, "* GenerateContentRequest.contents: contents is not specified")
    return None


async def generate(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].partition(":")
    if action not in ("generateContent", "streamGenerateContent"):
        return gemini_error(404, f"Method {action!r} not found for models/{model}")
    state = request.app[SIMULATOR_STATE]
    body = await read_json_object(request)
    invalid = _validate(request, state, body)
    if invalid is not None:
        return invalid
    assert body is not None
    spec, failure = await before_answer(state, model, gemini_error)
    if failure is not None:
        return failure
    seed = seed_for([model, body.get("systemInstruction"), body["contents"]])
    config = body.get("generationConfig") or {}
    try:
        plan = plan_reply(
            seed=seed,
            output_tokens_max=config.get("maxOutputTokens"),
            tool=_chosen_tool(body, seed),
            reasoning=_is_thinking(model),
            json_object=config.get("responseMimeType") == "application/json",
            response_schema=_response_schema(config),
            tokens_over_reported=spec.output_tokens_over_reported,
        )
    except SchemaUnsatisfiable as error:
        return gemini_error(400, f"Invalid JSON payload received. Invalid schema: {error}")
    usage = _usage(state, model, body, plan)
    if usage["promptTokenCount"] + (config.get("maxOutputTokens") or 0) > state.context_window_tokens:
        count = usage["promptTokenCount"]
        message = f"The input token count ({count}) exceeds the maximum number of tokens allowed"
        return gemini_error(400, message)
    response_id = f"sim{seed:016x}"
    if action == "streamGenerateContent":
        return await _stream(request, state, spec, model, plan, usage, response_id)
    await Pacer(state, spec).whole(plan.output_tokens)
    parts: list[dict[str, Any]] = [{"text": plan.text}] if plan.words else []
    if plan.complete_tool_call is not None:
        name, arguments = plan.complete_tool_call
        parts.append({"functionCall": {"name": name, "args": json.loads(arguments)}})
    candidate = {
        "content": {"role": "model", "parts": parts},
        "finishReason": FINISH_REASONS[plan.finish],
        "index": 0,
    }
    return web.json_response(
        {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}
    )


async def _stream(
    request: web.Request,
    state: SimulatorState,
    spec: FaultSpec,
    model: str,
    plan: ReplyPlan,
    usage: dict[str, Any],
    response_id: str,
) -> web.StreamResponse:
    sse = request.query.get("alt") == "sse"
    content_type = "text/event-stream" if sse else "application/json"
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    first = True
    partial_usage = {
        "promptTokenCount": usage["promptTokenCount"],
        "totalTokenCount": usage["promptTokenCount"],
    }

    async def send(payload: dict[str, Any]) -> None:
        nonlocal first
        text = json.dumps(payload)
        if sse:
            await response.write(f"data: {text}\r\n\r\n".encode())
        else:
            await response.write(f"{'[' if first else ','}{text}".encode())
        first = False

    def candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            body["finishReason"] = finish
        return body

    pieces: list[list[dict[str, Any]]] = []
    if plan.complete_tool_call is not None:
        name, arguments = plan.complete_tool_call
        # Gemini sends a function call whole, never in fragments (and a cut one not at all).
        pieces = [[{"functionCall": {"name": name, "args": json.loads(arguments)}}]]
    elif plan.tool_call is None:
        pieces = [[{"text": piece}] for piece in plan.pieces]
    pacer = Pacer(state, spec)
    for sent, parts in enumerate(pieces):
        if spec.cut_stream_after_tokens is not None and sent >= spec.cut_stream_after_tokens:
            cut_connection(request)
            return response
        if spec.stream_error_after_tokens is not None and sent >= spec.stream_error_after_tokens:
            await send(
                {
                    "error": {
                        "code": 503,
                        "message": "The model is overloaded (simulated)",
                        "status": "UNAVAILABLE",
                    }
                }
            )
            return response
        await pacer.next_token()
        last = sent == len(pieces) - 1
        await send(
            {
                "candidates": [candidate(parts, FINISH_REASONS[plan.finish] if last else None)],
                "usageMetadata": usage if last else partial_usage,
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    if not pieces:
        await send(
            {
                "candidates": [candidate([], FINISH_REASONS[plan.finish])],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    if not sse:
        await response.write(b"]")
    return response


def add_gemini_routes(app: web.Application) -> None:
    app.router.add_post("/v1beta/models/{target}", generate)
