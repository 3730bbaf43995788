"""POST /v1/messages and POST /v1/messages/count_tokens: Anthropic's Messages API as a front door to the one
paid pipeline (proxy/serving/pipeline.py).

parse (proxy/anthropic_types.py) → translate to the internal chat request (proxy/providers/
anthropic_inbound.py) → plan (any catalog model, or `auto`) → the pipeline → translate the answer back, or
relay the stream through an Anthropic renderer. When the plan's first candidate is an Anthropic deployment,
the request passes through untranslated instead (proxy/serving/passthrough.py: Anthropic candidates only,
the quote bounding the raw body), and the upstream's Message or events come back as they were sent.
The key comes in `x-api-key` or `Authorization: Bearer`; without either the caller gets the x402 402
exactly as on chat. Errors are rendered in Anthropic's shape for these routes only, except x402's own 402
(and 400 for a malformed payment): x402 documents.

count_tokens takes the same key as messages (a 401 without one: an estimate is free, but not anonymous, so it
cannot be used to probe the service without an account) and charges nothing. Its count is the prompt
estimate the router quotes with (proxy/providers/tokens.py), not the provider's tokenizer.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import pydantic
import structlog
from aiohttp import web

from proxy.anthropic_types import CountTokensRequest, MessagesRequest
from proxy.api.app_keys import CATALOG
from proxy.api.auth import authenticate_key
from proxy.api.paid import paid_call, pipeline_of, plan_chat
from proxy.api.request_parsing import read_json_model
from proxy.errors import ApiError, AuthenticationFailed, InvalidRequest, NotFound, PayloadTooLarge
from proxy.openai_types import ChatCompletionRequest
from proxy.payments.errors import PaymentRequired
from proxy.providers.anthropic_inbound import (
    AnthropicRawRenderer,
    AnthropicStreamRenderer,
    anthropic_error_body,
    chat_request_from_messages,
    message_from_chat,
)
from proxy.providers.errors import UnsupportedRequest
from proxy.providers.tokens import estimate_prompt_tokens
from proxy.serving.passthrough import passthrough_plan

__all__ = ["routes"]

routes = web.RouteTableDef()
log = structlog.get_logger("megarouter.messages")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _anthropic_errors(handler: Handler) -> Handler:
    """Renders this door's errors as `{"type": "error", "error": {"type", "message"}}`; x402's 402 passes."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PaymentRequired:
            raise  # The x402 document, for any x402 client.
        except web.HTTPRequestEntityTooLarge as error:
            return _error_response(PayloadTooLarge(f"request body is too large: {error.text}"))
        except ApiError as error:
            log.info("request_rejected", status=error.status, code=error.code, path=request.path)
            return _error_response(error)

    return wrapped


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(anthropic_error_body(error), status=error.status, headers=error.headers)


def _translated(body: MessagesRequest | CountTokensRequest, *, stream: bool) -> ChatCompletionRequest:
    try:
        return chat_request_from_messages(body, stream=stream)
    except UnsupportedRequest as error:
        raise InvalidRequest(str(error), code="unsupported_request", param="messages") from error
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise InvalidRequest(f"messages: {first['msg']}", code="invalid_value", param="messages") from error


@routes.post("/v1/messages")
@_anthropic_errors
async def create_message(request: web.Request) -> web.StreamResponse:
    body = await read_json_model(request, MessagesRequest)
    chat_body = _translated(body, stream=bool(body.stream))
    call = await paid_call(request, x_api_key=True)
    plan = await plan_chat(request, chat_body, call)
    structlog.contextvars.bind_contextvars(strategy=plan.strategy, first_candidate=plan.candidates[0].id)
    message_id = "msg_" + call.request_id.removeprefix("req_")
    pipeline = pipeline_of(request.app)
    raw_body = body.model_dump(mode="json", exclude_unset=True)  # Every field as sent, unknown ones too.
    raw_plan = passthrough_plan(plan, raw_body)
    if raw_plan is not None and chat_body.stream:
        return await pipeline.messages_raw_stream(
            call, raw_body, raw_plan, translated=chat_body, renderer=AnthropicRawRenderer()
        )
    if raw_plan is not None:
        passed = await pipeline.messages_raw(call, raw_body, raw_plan)
        return web.json_response(passed.result, headers=passed.headers)
    if chat_body.stream:
        renderer = AnthropicStreamRenderer(
            message_id=message_id, input_tokens_estimate=estimate_prompt_tokens(chat_body)
        )
        return await pipeline.chat_stream(call, chat_body, plan, renderer=renderer)
    served = await pipeline.chat_completion(call, chat_body, plan)
    return web.json_response(message_from_chat(served.result, message_id=message_id), headers=served.headers)


@routes.post("/v1/messages/count_tokens")
@_anthropic_errors
async def count_tokens(request: web.Request) -> web.Response:
    if await authenticate_key(request) is None:
        raise AuthenticationFailed("This endpoint needs 'x-api-key: <api key>'", code="missing_api_key")
    body = await read_json_model(request, CountTokensRequest)
    if body.model != "auto" and body.model not in request.app[CATALOG]:
        raise NotFound(f"model {body.model!r} is not in the catalog", code="model_not_found", param="model")
    chat_body = _translated(body, stream=False)
    tokens = estimate_prompt_tokens(chat_body)
    assert tokens > 0
    return web.json_response({"input_tokens": tokens})
