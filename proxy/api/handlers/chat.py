"""POST /v1/chat/completions: parse → plan → the paid pipeline (proxy/serving/pipeline.py) → render."""

from __future__ import annotations

import structlog
from aiohttp import web

from proxy.api.paid import paid_call, pipeline_of, plan_chat
from proxy.api.request_parsing import read_json_model
from proxy.errors import InvalidRequest
from proxy.openai_types import ChatCompletionRequest
from proxy.providers.base import openai_usage

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json_model(request, ChatCompletionRequest)
    if body.n not in (None, 1):
        raise InvalidRequest("only n=1 is supported", code="unsupported_value", param="n")
    # The key (if any) is known before routing: it may carry its own default strategy.
    call = await paid_call(request)
    plan = await plan_chat(request, body, call)
    structlog.contextvars.bind_contextvars(strategy=plan.strategy, first_candidate=plan.candidates[0].id)
    pipeline = pipeline_of(request.app)
    if body.stream:
        return await pipeline.chat_stream(call, body, plan)
    served = await pipeline.chat_completion(call, body, plan)
    # Callers (and SDKs) read token counts from the body for every provider kind: where the adapter's
    # translation (Anthropic, Gemini) left no usage, the body carries the usage we charged.
    response = served.result.response
    if response.usage is None:
        response = response.model_copy(update={"usage": openai_usage(served.result.usage)})
    return web.json_response(response.model_dump(mode="json", exclude_none=True), headers=served.headers)
