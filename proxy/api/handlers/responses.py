"""POST /v1/responses: OpenAI's Responses API as a front door to the chat pipeline; GET and DELETE
/v1/responses/{id} for stored responses.

parse → the conversation (a continued one, `previous_response_id`, is read from the caller key's stored
responses) → translate to a chat request (proxy/api/responses_translation.py) → plan → the paid pipeline,
exactly as chat (auth, x402, hold, failover, capture) → a Response object, or the Responses stream events
(proxy/api/responses_stream.py) through the same stream relay, so a cut or a disconnect is charged the same.
A keyed caller's response is stored (unless `store: false`) before the caller reads it, so the next request
may continue it at once; an x402 payer without a key has no state to keep.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web
from pydantic import TypeAdapter

from proxy.accounts.principal import KeyPrincipal
from proxy.api.app_keys import DB_ENGINE, SETTINGS
from proxy.api.auth import authenticate_bearer
from proxy.api.paid import paid_call, pipeline_of, plan_chat
from proxy.api.request_parsing import read_json_model
from proxy.api.responses_store import ResponseOwner, ResponseStore
from proxy.api.responses_stream import ResponsesStreamRenderer
from proxy.api.responses_translation import (
    chat_request_of,
    completed_output,
    new_response_id,
    response_object,
    response_status,
)
from proxy.api.responses_types import InputItem, MessageItem, ResponsesRequest
from proxy.errors import AuthenticationFailed, InvalidRequest, NotFound

__all__ = ["routes"]

routes = web.RouteTableDef()
_ITEMS = TypeAdapter(list[InputItem])


def _store_of(app: web.Application) -> ResponseStore:
    return ResponseStore(app[DB_ENGINE], app[SETTINGS].responses)


def _owner(principal: KeyPrincipal) -> ResponseOwner:
    # Wallet keys and org keys are numbered in separate tables: the kind keeps equal ids apart.
    return ResponseOwner(kind="wallet" if principal.org is None else "org", key_id=principal.key_id)


def _wants_state(body: ResponsesRequest, principal: KeyPrincipal | None) -> bool:
    """Whether this response is stored: by default for a keyed caller (wallet or org key); never without a
    key (a 400 when asked for)."""
    if principal is None:
        for field, asked in (("store", body.store), ("previous_response_id", body.previous_response_id)):
            if asked:
                raise InvalidRequest(
                    f"{field} needs an API key: conversation state is kept per key, and an x402 payment "
                    "without one has no state to keep; send the whole conversation in input instead",
                    code="unsupported_parameter",
                    param=field,
                )
        return False
    return body.store is not False


async def _conversation(
    store: ResponseStore, body: ResponsesRequest, principal: KeyPrincipal | None, *, items_max: int
) -> list[InputItem]:
    """The whole conversation this request continues and adds to."""
    new_items: list[InputItem] = (
        [MessageItem(role="user", content=body.input)] if isinstance(body.input, str) else list(body.input)
    )
    if body.previous_response_id is None:
        return new_items
    assert principal is not None
    previous = await store.load(owner=_owner(principal), response_id=body.previous_response_id)
    if previous is None:
        raise InvalidRequest(
            f"Previous response with id '{body.previous_response_id}' not found.",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    items = previous.items + new_items
    if len(items) > items_max:
        raise InvalidRequest(
            f"the conversation would hold {len(items)} items, more than the {items_max} kept; start a new "
            "one with the turns that matter in input",
            code="conversation_too_long",
            param="previous_response_id",
        )
    return items


@routes.post("/v1/responses")
async def create_response(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = await read_json_model(request, ResponsesRequest)
    call = await paid_call(request)
    stored = _wants_state(body, call.principal)
    store = _store_of(app)
    conversation = await _conversation(
        store, body, call.principal, items_max=app[SETTINGS].responses.conversation_items_max
    )
    # Refuses what cannot be translated before any money moves.
    chat_body = chat_request_of(body.model_copy(update={"input": conversation}))
    plan = await plan_chat(request, chat_body, call)
    structlog.contextvars.bind_contextvars(strategy=plan.strategy, first_candidate=plan.candidates[0].id)
    pipeline = pipeline_of(app)
    response_id, created_at_s = new_response_id(), int(time.time())

    async def save(answer: dict[str, Any]) -> None:
        assert call.principal is not None
        output = _ITEMS.validate_python(answer["output"])
        await store.save(owner=_owner(call.principal), items=conversation + output, response=answer)

    if chat_body.stream:
        renderer = ResponsesStreamRenderer(
            body,
            response_id=response_id,
            created_at_s=created_at_s,
            store=stored,
            on_completed=save if stored else None,
        )
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
        store=stored,
    )
    if stored:
        await save(answer)
    return web.json_response(answer, headers=served.headers)


async def _owner_of(request: web.Request) -> ResponseOwner:
    principal = await authenticate_bearer(request)
    if principal is None:
        raise AuthenticationFailed("stored responses are read with the API key that created them")
    return _owner(principal)


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"No response found with id '{response_id}'.", param="response_id")


@routes.get("/v1/responses/{response_id}")
async def retrieve_response(request: web.Request) -> web.Response:
    owner = await _owner_of(request)
    response_id = request.match_info["response_id"]
    stored = await _store_of(request.app).load(owner=owner, response_id=response_id)
    if stored is None:
        raise _not_found(response_id)
    return web.json_response(stored.response)


@routes.delete("/v1/responses/{response_id}")
async def delete_response(request: web.Request) -> web.Response:
    owner = await _owner_of(request)
    response_id = request.match_info["response_id"]
    if not await _store_of(request.app).delete(owner=owner, response_id=response_id):
        raise _not_found(response_id)
    return web.json_response({"id": response_id, "object": "response", "deleted": True})
