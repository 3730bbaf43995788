"""The simulated Anthropic Messages API: `POST /v1/messages`, JSON and SSE.

Checks what Anthropic checks first (`x-api-key`, `anthropic-version`, a required `max_tokens`), answers
with content blocks (text or tool_use), streams the real event sequence (message_start,
content_block_start, ping, content_block_delta with text_delta / input_json_delta, content_block_stop,
message_delta with stop_reason and the cumulative usage, message_stop), and simulates explicit prompt caching:
the prefix up to the last `cache_control` breakpoint (when it has at least 1024 tokens) is written to
the cache the first time (`cache_creation_input_tokens`) and read afterwards (`cache_read_input_tokens`).
Structured outputs: a tool_use `input` validates against the tool's `input_schema`, and a JSON schema in
`output_config.format` (or the beta's `output_format`) makes the text block an instance of it.
Extended thinking: `thinking: {"type": "enabled", "budget_tokens"}` (at least 1024 and below max_tokens, as
Anthropic checks) makes the reply open with a signed thinking block (streamed as thinking_delta and
signature_delta), its tokens counted in output_tokens. The last body per model is kept for tests.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.devnet.simulator.common import (
    PROMPT_CACHE_TOKENS_MIN,
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

__all__ = ["add_anthropic_routes", "anthropic_error"]

IMAGE_TOKENS = 1600  # About (1092 × 1092) / 750, Anthropic's published estimate for a full-size image.
MESSAGE_OVERHEAD_TOKENS = 3
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
THINKING_BUDGET_TOKENS_MIN = 1024


def anthropic_error(status: int, message: str, retry_after_s: int | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
    return json_error(status, body, retry_after_s=retry_after_s)


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return estimate_text_tokens(block)
    kind = block.get("type")
    if kind == "text":
        return estimate_text_tokens(str(block.get("text", "")))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "tool_result":
        content = block.get("content", "")
        blocks = content if isinstance(content, list) else [content]
        return 2 + sum(_block_tokens(inner) for inner in blocks)
    return estimate_text_tokens(json.dumps(block))


def _blocks(content: Any) -> list[Any]:
    return content if isinstance(content, list) else [content]


def _usage(state: SimulatorState, body: dict[str, Any], plan: ReplyPlan) -> dict[str, int]:
    """Prompt tokens split into uncached input, cache write and cache read, as Anthropic reports them."""
    tools_tokens = sum(estimate_text_tokens(json.dumps(tool)) for tool in body.get("tools") or [])
    sequence: list[tuple[Any, int]] = [
        (block, _block_tokens(block)) for block in _blocks(body.get("system") or [])
    ]
    for message in body["messages"]:
        blocks = _blocks(message.get("content", ""))
        sequence += [(block, _block_tokens(block)) for block in blocks]
        if sequence:
            sequence[-1] = (sequence[-1][0], sequence[-1][1] + MESSAGE_OVERHEAD_TOKENS)
    total = tools_tokens + sum(tokens for _, tokens in sequence)
    breakpoints = [
        i for i, (block, _) in enumerate(sequence) if isinstance(block, dict) and "cache_control" in block
    ]
    cache_read = cache_write = 0
    if breakpoints:
        end = breakpoints[-1] + 1
        prefix_tokens = tools_tokens + sum(tokens for _, tokens in sequence[:end])
        if prefix_tokens >= PROMPT_CACHE_TOKENS_MIN:
            key = f"anthropic:{seed_for([body['model'], body.get('tools'), [b for b, _ in sequence[:end]]])}"
            if state.prompt_cache.seen(key):
                cache_read = prefix_tokens
            else:
                cache_write = prefix_tokens
    return {
        "input_tokens": total - cache_read - cache_write,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": plan.output_tokens,
    }


def _chosen_tool(body: dict[str, Any], seed: int) -> ToolSpec | None:
    tools = {tool["name"]: tool.get("input_schema") or {} for tool in body.get("tools") or []}
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        name = choice.get("name", "")
        return ToolSpec(name, tools[name]) if name in tools else None
    last = _blocks(body["messages"][-1].get("content", ""))
    answering_tool = any(isinstance(block, dict) and block.get("type") == "tool_result" for block in last)
    if choice.get("type") != "any" and answering_tool:
        return None
    name = list(tools)[seed % len(tools)]
    return ToolSpec(name, tools[name])


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of structured outputs: `output_config.format` (GA) or `output_format` (beta)."""
    output_config = body.get("output_config")
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    output_format = output_format or body.get("output_format")
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    schema = output_format.get("schema")
    return schema if isinstance(schema, dict) else {"type": "object"}


def _validate(
    request: web.Request, state: SimulatorState, body: dict[str, Any] | None
) -> web.Response | None:
    if not state.key_accepted(request.headers.get("x-api-key")):
        return anthropic_error(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return anthropic_error(400, "anthropic-version: header is required")
    if body is None:
        return anthropic_error(400, "request body is not valid JSON")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return anthropic_error(400, f"{name}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return anthropic_error(400, "max_tokens: must be a positive integer")
    if not isinstance(body["messages"], list) or not body["messages"]:
        return anthropic_error(400, "messages: at least one message is required")
    return _validate_thinking(body)


def _validate_thinking(body: dict[str, Any]) -> web.Response | None:
    thinking = body.get("thinking")
    if thinking is None or (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        return None
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return anthropic_error(400, "thinking: type must be 'enabled' or 'disabled'")
    budget_tokens = thinking.get("budget_tokens")
    if not isinstance(budget_tokens, int) or budget_tokens < THINKING_BUDGET_TOKENS_MIN:
        return anthropic_error(400, f"thinking.budget_tokens: must be at least {THINKING_BUDGET_TOKENS_MIN}")
    if budget_tokens >= body["max_tokens"]:
        return anthropic_error(400, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return None


def _thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _thinking_block(plan: ReplyPlan) -> dict[str, Any]:
    return {
        "type": "thinking",
        "thinking": f"Weighing the question ({plan.reasoning_tokens} tokens of simulated thought).",
        "signature": f"sig_sim{plan.tool_call_id}",
    }


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[SIMULATOR_STATE]
    body = await read_json_object(request)
    invalid = _validate(request, state, body)
    if invalid is not None:
        return invalid
    assert body is not None
    state.record_body(str(body["model"]), body)
    spec, failure = await before_answer(state, str(body["model"]), anthropic_error)
    if failure is not None:
        return failure
    seed = seed_for([body["model"], body.get("system"), body["messages"]])
    try:
        plan = plan_reply(
            seed=seed,
            output_tokens_max=body["max_tokens"],
            tool=_chosen_tool(body, seed),
            reasoning=_thinking_enabled(body)
            or (is_reasoning_model(str(body["model"])) and "thinking" in body),
            # Without structured outputs, callers (and our adapter) ask for JSON in the system prompt.
            json_object="JSON" in json.dumps(body.get("system") or ""),
            response_schema=_output_schema(body),
            tokens_over_reported=spec.output_tokens_over_reported,
        )
    except SchemaUnsatisfiable as error:
        return anthropic_error(400, f"Invalid schema: {error}")
    usage = _usage(state, body, plan)
    prompt_tokens = (
        usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    )
    if prompt_tokens + body["max_tokens"] > state.context_window_tokens:
        message = f"prompt is too long: {prompt_tokens} tokens > {state.context_window_tokens} maximum"
        return anthropic_error(400, message)
    message_id = f"msg_sim{seed:016x}"
    content: list[dict[str, Any]] = [_thinking_block(plan)] if _thinking_enabled(body) else []
    if plan.words:
        content.append({"type": "text", "text": plan.text})
    if plan.complete_tool_call is not None:
        name, arguments = plan.complete_tool_call
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{plan.tool_call_id}",
                "name": name,
                "input": json.loads(arguments),
            }
        )
    if body.get("stream"):
        return await _stream(request, state, spec, body, plan, usage, message_id)
    await Pacer(state, spec).whole(plan.output_tokens)
    return web.json_response(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": STOP_REASONS[plan.finish],
            "stop_sequence": None,
            "usage": usage,
        }
    )


async def _stream(
    request: web.Request,
    state: SimulatorState,
    spec: FaultSpec,
    body: dict[str, Any],
    plan: ReplyPlan,
    usage: dict[str, int],
    message_id: str,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def send(event: str, data: dict[str, Any]) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode())

    start_usage = {**usage, "output_tokens": 1}
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    await send("message_start", {"message": message})
    index = 0
    if _thinking_enabled(body):
        thought = _thinking_block(plan)
        await send(
            "content_block_start", {"index": 0, "content_block": {**thought, "thinking": "", "signature": ""}}
        )
        await send(
            "content_block_delta",
            {"index": 0, "delta": {"type": "thinking_delta", "thinking": thought["thinking"]}},
        )
        await send(
            "content_block_delta",
            {"index": 0, "delta": {"type": "signature_delta", "signature": thought["signature"]}},
        )
        await send("content_block_stop", {"index": 0})
        index = 1
    if plan.tool_call is not None:
        name, arguments = plan.tool_call
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": f"toolu_{plan.tool_call_id}",
            "name": name,
            "input": {},
        }
        deltas = [
            {"type": "input_json_delta", "partial_json": arguments[i : i + 8]}
            for i in range(0, len(arguments), 8)
        ]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in plan.pieces]
    await send("content_block_start", {"index": index, "content_block": block})
    await send("ping", {})
    pacer = Pacer(state, spec)
    for sent, delta in enumerate(deltas):
        if spec.cut_stream_after_tokens is not None and sent >= spec.cut_stream_after_tokens:
            cut_connection(request)
            return response
        if spec.stream_error_after_tokens is not None and sent >= spec.stream_error_after_tokens:
            await send("error", {"error": {"type": "overloaded_error", "message": "Overloaded (simulated)"}})
            return response
        await pacer.next_token()
        await send("content_block_delta", {"index": index, "delta": delta})
    await send("content_block_stop", {"index": index})
    delta_body = {"stop_reason": STOP_REASONS[plan.finish], "stop_sequence": None}
    # Today's API repeats the whole usage (input and cache counts too) in message_delta, as cumulative counts.
    counts = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    final_usage = {name: usage[name] for name in counts}
    await send("message_delta", {"delta": delta_body, "usage": final_usage})
    await send("message_stop", {})
    return response


def add_anthropic_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
