"""POST /v1/responses: OpenAI's Responses API as a front door to the chat pipeline.

parse → translate to a chat request (proxy/api/responses_translation.py) → plan → the paid pipeline, exactly
as chat (auth, x402, hold, failover, capture) → a Response object, or the Responses stream events
(proxy/api/responses_stream.py) through the same stream relay, so a cut or a disconnect is charged the same.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from proxy.api.paid import paid_call, pipeline_of, plan_chat
from proxy.api.request_parsing import read_json_model
from proxy.api.responses_stream import ResponsesStreamRenderer
from proxy.api.responses_translation import (
    chat_request_of,
    completed_output,
    new_response_id,
    response_object,
    response_status,
)
from proxy.api.responses_types import ResponsesRequest

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/v1/responses")
async def create_response(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = await read_json_model(request, ResponsesRequest)
    chat_body = chat_request_of(body)  # Refuses what cannot be translated before any money moves.
    call = await paid_call(request)
    plan = await plan_chat(request, chat_body, call)
    structlog.contextvars.bind_contextvars(strategy=plan.strategy, first_candidate=plan.candidates[0].id)
    pipeline = pipeline_of(app)
    response_id, created_at_s = new_response_id(), int(time.time())
    if chat_body.stream:
        renderer = ResponsesStreamRenderer(body, response_id=response_id, created_at_s=created_at_s)
        return await pipeline.chat_stream(call, chat_body, plan, renderer=renderer)
    served = await pipeline.chat_completion(call, chat_body, plan)
    completion = served.result.response
    status, incomplete_details = response_status(completion.choices[0].finish_reason)
    answer = response_object(
        body,
        response_id=response_id,
        created_at_s=created_at_s,
        model_id=served.model.id,
        status=status,
        output=completed_output(completion, status=status),
        usage=served.result.usage,  # The usage charged, for every provider kind.
        incomplete_details=incomplete_details,
    )
    return web.json_response(answer, headers=served.headers)
