"""What a 402 offers beyond the payment, and how agents find the paid resources.

- `bazaar` (x402's discovery extension): each paid endpoint's input and output JSON schema, in the shape
  the official SDK's `declare_discovery_extension` writes (`info.input` {type http, method, bodyType,
  body: an example}, `info.output` {type json, example}; `schema` validating both).
- `sign-in-with-x`: the terms a keyless wallet signs to be served from its credit (proxy/accounts/
  sign_in_with_x.py), a fresh nonce per 402.
- `GET /.well-known/x402`: the discovery document (`version` 1, `resources`: the paid URLs, `instructions`).
- `GET /v1/auth/scope`: what a wallet's signed messages must name (domain, URI, chain; configuration only)
  and the tokens paid out, so a command line can sign a withdrawal or a sign-in without a 402 first.

The schemas are short on purpose: the 402 travels in a header too (the PAYMENT-REQUIRED header must stay
well under common 8 KiB header limits); the complete request models are in /openapi.json.
`x402_extensions_middleware` adds both extensions to every x402 402 of a paid endpoint, body and header alike,
leaving the offer itself (`accepts`) as the gate built it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.api.app_keys import SETTINGS, SIGNING_SCOPE, WALLET_SIGN_INS
from proxy.payments.errors import PaymentRequired
from x402.siwx import SIGN_IN_WITH_X

__all__ = [
    "BAZAAR",
    "PAID_RESOURCES",
    "bazaar_extension",
    "discovery_document",
    "routes",
    "x402_extensions_middleware",
]

BAZAAR = "bazaar"
routes = web.RouteTableDef()

_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"type": "string"}, "content": {"type": ["string", "array"]}},
    },
}
_USAGE = {"type": "object", "description": "tokens counted for the charge"}
_STREAM = {"type": "boolean", "description": "server-sent events"}
_MODEL = {"type": "string", "description": "a catalog model id, or auto"}


def _resource(
    *, summary: str, input_schema: dict[str, Any], example: dict[str, Any], output: dict[str, Any]
) -> dict[str, Any]:
    return {"summary": summary, "input_schema": input_schema, "example": example, "output_schema": output}


# The paid endpoints: what to send, what comes back (the full models are in /openapi.json).
PAID_RESOURCES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": _resource(
        summary="OpenAI chat completion, routed across providers, paid per call",
        input_schema={
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": _MODEL,
                "messages": _MESSAGES,
                "max_tokens": {"type": "integer", "minimum": 1},
                "stream": _STREAM,
            },
        },
        example={
            "model": "auto",
            "messages": [{"role": "user", "content": "What is 2+2?"}],
            "max_tokens": 64,
        },
        output={
            "type": "object",
            "required": ["id", "object", "choices"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "chat.completion"},
                "model": {"type": "string"},
                "choices": {"type": "array"},
                "usage": _USAGE,
            },
        },
    ),
    "/v1/responses": _resource(
        summary="OpenAI Responses API, paid per call",
        input_schema={
            "type": "object",
            "required": ["model", "input"],
            "properties": {
                "model": _MODEL,
                "input": {"type": ["string", "array"]},
                "max_output_tokens": {"type": "integer", "minimum": 1},
                "stream": _STREAM,
            },
        },
        example={"model": "auto", "input": "What is 2+2?", "max_output_tokens": 64},
        output={
            "type": "object",
            "required": ["id", "object", "output"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "response"},
                "output": {"type": "array"},
                "usage": _USAGE,
            },
        },
    ),
    "/v1/messages": _resource(
        summary="Anthropic Messages API over any catalog model, paid per call",
        input_schema={
            "type": "object",
            "required": ["model", "messages", "max_tokens"],
            "properties": {
                "model": _MODEL,
                "messages": _MESSAGES,
                "max_tokens": {"type": "integer", "minimum": 1},
                "system": {"type": ["string", "array"]},
                "stream": _STREAM,
            },
        },
        example={
            "model": "auto",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "What is 2+2?"}],
        },
        output={
            "type": "object",
            "required": ["id", "type", "content"],
            "properties": {
                "id": {"type": "string"},
                "type": {"const": "message"},
                "content": {"type": "array"},
                "usage": _USAGE,
            },
        },
    ),
    "/v1/embeddings": _resource(
        summary="OpenAI embeddings, paid per call",
        input_schema={
            "type": "object",
            "required": ["model", "input"],
            "properties": {"model": {"type": "string"}, "input": {"type": ["string", "array"]}},
        },
        example={"model": "openai/text-embedding-3-small", "input": "hello"},
        output={
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array"}, "usage": _USAGE},
        },
    ),
}


def bazaar_extension(path: str) -> dict[str, Any]:
    """The `bazaar` entry of a 402 for the paid endpoint at `path` (POST, JSON body)."""
    resource = PAID_RESOURCES[path]
    return {
        "info": {
            "input": {"type": "http", "method": "POST", "bodyType": "json", "body": resource["example"]},
            "output": {"type": "json", "example": {"object": "see the output schema"}},
        },
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "input": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "const": "http"},
                        "method": {"type": "string", "enum": ["POST"]},
                        "bodyType": {"type": "string", "enum": ["json"]},
                        "body": resource["input_schema"],
                    },
                    "required": ["type", "method", "bodyType", "body"],
                    "additionalProperties": False,
                },
                "output": {
                    "type": "object",
                    "properties": {"type": {"type": "string"}, "example": resource["output_schema"]},
                    "required": ["type"],
                },
            },
            "required": ["input"],
        },
    }


def _base_url(request: web.Request) -> str:
    base = request.app[SETTINGS].public_base_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/")


def discovery_document(base_url: str) -> dict[str, Any]:
    return {
        "version": 1,
        "resources": [f"{base_url}{path}" for path in PAID_RESOURCES],
        "instructions": (
            "POST an OpenAI- or Anthropic-style JSON body. Unpaid calls get 402 with x402 v2 payment "
            "requirements (exact, EIP-3009) for the request's quote; what the call does not use stays as "
            "credit of the paying wallet, spent on later calls by signing in with the sign-in-with-x "
            "extension, or withdrawn (POST /v1/credits/withdraw). Schemas: /openapi.json."
        ),
    }


@routes.get("/.well-known/x402")
async def well_known_x402(request: web.Request) -> web.Response:
    return web.json_response(discovery_document(_base_url(request)))


@routes.get("/v1/auth/scope")
async def signing_scope(request: web.Request) -> web.Response:
    scope = request.app[SIGNING_SCOPE]
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "domain": scope.domain,
            "uri": scope.uri,
            "chain_id": scope.chain_id,
            "network": settings.network,
            "sign_in_with_x": WALLET_SIGN_INS in request.app,
            "assets": [
                {"symbol": asset.symbol, "address": asset.address, "decimals": asset.decimals}
                for asset in settings.assets
            ],
        }
    )


@web.middleware
async def x402_extensions_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PaymentRequired as offer:
        if request.path in PAID_RESOURCES and request.method == "POST":
            _extend(request, offer)
        raise


def _extend(request: web.Request, offer: PaymentRequired) -> None:
    extensions: dict[str, Any] = dict(offer.document.get("extensions") or {})
    extensions[BAZAAR] = bazaar_extension(request.path)
    sign_ins = request.app.get(WALLET_SIGN_INS)
    if sign_ins is not None:
        extensions[SIGN_IN_WITH_X] = sign_ins.declaration()
    offer.document = {**offer.document, "extensions": extensions}
    text = json.dumps(offer.document, separators=(",", ":"), ensure_ascii=False)
    offer.headers["PAYMENT-REQUIRED"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
