"""GET /openapi.json: an OpenAPI 3.1 document of the whole public API, built from the request models.

The request bodies are the same pydantic models the handlers validate with, so the document cannot drift from
what the server accepts; clients generate SDKs from it and the test suite fuzzes every operation through it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from proxy.accounts.withdrawals import WithdrawalRequest
from proxy.anthropic_types import AnthropicErrorBody, CountTokensRequest, MessagesRequest
from proxy.api.handlers.keys import ChallengeBody, CreateKeyBody
from proxy.api.handlers.orgs import (
    BudgetBody,
    BudgetPatch,
    KeyBody,
    MemberBody,
    MemberPatch,
    OrgBody,
    RateLimitBody,
    RateLimitPatch,
    UnitBody,
    UnitPatch,
)
from proxy.api.responses_types import ResponsesRequest
from proxy.openai_types import ChatCompletionRequest, EmbeddingsRequest, ErrorBody
from proxy.serving.analytics import DIMENSIONS as ANALYTICS_DIMENSIONS

__all__ = ["openapi_document", "routes"]

routes = web.RouteTableDef()

_SCHEMA_REF = "#/components/schemas/{model}"
ORG_BODY_MODELS: tuple[type[BaseModel], ...] = (
    OrgBody,
    UnitBody,
    UnitPatch,
    MemberBody,
    MemberPatch,
    KeyBody,
    BudgetBody,
    BudgetPatch,
    RateLimitBody,
    RateLimitPatch,
)
_BODY_MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionRequest,
    ResponsesRequest,
    MessagesRequest,
    CountTokensRequest,
    EmbeddingsRequest,
    ChallengeBody,
    CreateKeyBody,
    WithdrawalRequest,
    ErrorBody,
    AnthropicErrorBody,
    *ORG_BODY_MODELS,
)
# Caller errors any operation may answer; 5xx are documented only where an upstream or the chain is involved.
_CALLER_ERRORS = {"400": "invalid request", "404": "unknown route or resource", "413": "body too large"}
_UPSTREAM_ERRORS = {
    "429": "rate limited",
    "502": "every upstream candidate failed",
    "503": "no upstream or the chain is unavailable",
    "504": "upstream timed out",
}
_PAYMENT_HEADERS = (
    ("PAYMENT-SIGNATURE", "x402 v2 payment payload, base64 JSON"),
    ("X-PAYMENT", "x402 v1 payment payload, base64 JSON"),
    ("SIGN-IN-WITH-X", "x402 sign-in-with-x proof, base64 JSON: a keyless wallet pays from its credit"),
)
_ROUTING_HEADERS = (
    ("X-Request-Id", "correlates log lines; never decides what is charged"),
    ("X-MegaRouter-Strategy", "routing strategy: balanced, cost, latency or availability"),
    ("X-MegaRouter-Allow-Unrated", "true: auto may pick models without a cited quality figure"),
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _SCHEMA_REF.format(model=model.__name__)}


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _BODY_MODELS:
        schema = model.model_json_schema(ref_template=_SCHEMA_REF, mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["PaymentRequired"] = {
        "type": "object",
        "description": "x402 v2 payment requirements (the PAYMENT-REQUIRED header carries the same, base64)",
        "required": ["x402Version", "accepts"],
        "properties": {"x402Version": {"type": "integer"}, "accepts": {"type": "array"}},
    }
    return {
        "schemas": schemas,
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "a MegaRouter key"},
            "anthropicApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "a MegaRouter key, as Anthropic's SDK sends it",
            },
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "the operator's admin token (MEGAROUTER_ADMIN_TOKEN): analytics, alerts",
            },
            "metricsToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "the metrics token, when the server has one",
            },
        },
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _header_parameters(headers: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in headers
    ]


def _operation(
    summary: str,
    *,
    ok: str = "200",
    body: type[BaseModel] | None = None,
    keyed: bool = False,
    paid: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    extra: dict[str, str] | None = None,
    error_body: type[BaseModel] = ErrorBody,
    key_schemes: tuple[str, ...] = ("apiKey",),
) -> dict[str, Any]:
    error = _ref(error_body)
    responses: dict[str, Any] = {ok: _json({"type": "object"}, "success")}
    responses.update({status: _json(error, text) for status, text in _CALLER_ERRORS.items()})
    if keyed or paid:
        responses["401"] = _json(error, "missing or invalid API key")
    if paid:
        responses["402"] = _json(
            {"$ref": _SCHEMA_REF.format(model="PaymentRequired")}, "payment required, or an x402 reason code"
        )
        responses.update({status: _json(error, text) for status, text in _UPSTREAM_ERRORS.items()})
    responses.update({status: _json(error, text) for status, text in (extra or {}).items()})
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    headers = (_PAYMENT_HEADERS + _ROUTING_HEADERS) if paid else ()
    operation["parameters"] = (parameters or []) + _header_parameters(headers)
    if keyed:
        operation["security"] = [{scheme: []} for scheme in key_schemes]
    elif paid:
        operation["security"] = [*({scheme: []} for scheme in key_schemes), {}]
    return operation


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _metrics_operation() -> dict[str, Any]:
    error = _ref(ErrorBody)
    return {
        "summary": "Prometheus metrics (text exposition format)",
        "responses": {
            "200": {
                "description": "the metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": _json(error, "a metrics bearer token is configured and was not given"),
            "404": _json(error, "metrics are disabled"),
        },
        "security": [{"metricsToken": []}, {}],
    }


def _route_preview_operation() -> dict[str, Any]:
    """Free: no payment headers, an optional key (its strategy applies, and its own rate limit)."""
    operation = _operation(
        "What a chat request would be routed to and quoted (task kind, difficulty, quality needed, ranked "
        "candidates with prices, the quote); calls no model, holds nothing, charges nothing",
        body=ChatCompletionRequest,
        parameters=_header_parameters(_ROUTING_HEADERS),
        extra={"401": "invalid API key", "429": "too many previews from this key or client (Retry-After)"},
    )
    operation["security"] = [{"apiKey": []}, {}]
    return operation


def _analytics_operation() -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any], text: str, *, required: bool = False) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": required, "description": text, "schema": schema}

    unix_s = {"type": "integer", "minimum": 0}
    operation = _operation(
        "Spend, tokens, requests, errors and latency percentiles per hour or day, from the roll-ups",
        keyed=True,
        parameters=[
            query("start", unix_s, "range start, unix s (widened down to a whole bucket)", required=True),
            query("end", unix_s, "range end, unix s, excluded (widened up to a whole bucket)", required=True),
            query("bucket", {"type": "string", "enum": ["hour", "day"]}, "bucket size (default hour)"),
            query(
                "group_by",
                {"type": "string"},
                "comma-separated, at most 3 of: " + ", ".join(ANALYTICS_DIMENSIONS),
            ),
            query("model", {"type": "string"}, "only this model id"),
            query("provider", {"type": "string"}, "only this provider"),
            query("key", {"type": "integer", "minimum": 1}, "only this API key id"),
        ],
    )
    operation["security"] = [{"apiKey": []}, {"adminToken": []}]
    return operation


def _paths() -> dict[str, Any]:
    query_string = {"type": "string"}
    return {
        "/v1/chat/completions": {
            "post": _operation("Chat completion (JSON or SSE stream)", body=ChatCompletionRequest, paid=True)
        },
        "/v1/responses": {
            "post": _operation(
                "Response, OpenAI Responses API (JSON or SSE stream)", body=ResponsesRequest, paid=True
            )
        },
        "/v1/responses/{response_id}": {
            "get": _operation(
                "A stored response, read with the key that created it",
                keyed=True,
                parameters=[_path_parameter("response_id")],
            ),
            "delete": _operation(
                "Deletes a stored response",
                keyed=True,
                parameters=[_path_parameter("response_id")],
            ),
        },
        "/v1/messages": {
            "post": _operation(
                "Anthropic Messages API (JSON or SSE stream), any catalog model",
                body=MessagesRequest,
                paid=True,
                error_body=AnthropicErrorBody,
                key_schemes=("anthropicApiKey", "apiKey"),
            )
        },
        "/v1/messages/count_tokens": {
            "post": _operation(
                "Anthropic count_tokens: the router's prompt-token estimate, free with a key",
                body=CountTokensRequest,
                keyed=True,
                error_body=AnthropicErrorBody,
                key_schemes=("anthropicApiKey", "apiKey"),
            )
        },
        "/v1/embeddings": {"post": _operation("Embeddings", body=EmbeddingsRequest, paid=True)},
        "/v1/route/preview": {"post": _route_preview_operation()},
        "/v1/models": {"get": _operation("The catalog")},
        "/v1/models/{model_id}": {
            "get": _operation("One catalog model", parameters=[_path_parameter("model_id")])
        },
        "/v1/deployments": {
            "get": _operation(
                "Routable deployments with live health",
                parameters=[
                    {"name": "model", "in": "query", "required": False, "schema": query_string},
                    {"name": "provider", "in": "query", "required": False, "schema": query_string},
                ],
            )
        },
        "/v1/auth/challenge": {
            "post": _operation(
                "A sign-in message for a wallet to sign", body=ChallengeBody, extra={"429": "slow down"}
            )
        },
        "/v1/keys": {
            "post": _operation(
                "Create an API key from a signed challenge",
                ok="201",
                body=CreateKeyBody,
                extra={"401": "signature or challenge refused"},
            ),
            "get": _operation("The wallet's API keys", keyed=True),
        },
        "/v1/keys/{key_id}": {
            "delete": _operation("Revoke an API key", keyed=True, parameters=[_path_parameter("key_id")])
        },
        "/v1/credits": {
            "get": _operation(
                "The wallet credit of the key, or of a wallet signed in with sign-in-with-x",
                keyed=True,
                parameters=_header_parameters(
                    (("SIGN-IN-WITH-X", "x402 sign-in-with-x proof, base64 JSON, instead of a key"),)
                ),
            )
        },
        "/v1/auth/scope": {
            "get": _operation("Domain, URI and chain that signed messages must name; tokens paid out")
        },
        "/.well-known/x402": {"get": _operation("x402 discovery: the paid resources of this server")},
        "/v1/credits/topup": {
            "post": _operation(
                "Top up credit with an x402 payment of any amount",
                paid=True,
                parameters=[{"name": "amount", "in": "query", "required": True, "schema": query_string}],
            )
        },
        "/v1/credits/withdraw": {
            "post": _operation(
                "Send credit back to the wallet, on chain",
                body=WithdrawalRequest,
                extra={"202": "accepted, settling", "401": "signature refused", "409": "conflict"},
            )
        },
        "/v1/usage": {
            "get": _operation(
                "How the key's recent requests were charged",
                keyed=True,
                parameters=[{"name": "limit", "in": "query", "required": False, "schema": query_string}],
            )
        },
        "/v1/usage/{request_id}": {
            "get": _operation(
                "How one request was charged", keyed=True, parameters=[_path_parameter("request_id")]
            )
        },
        "/v1/alerts": {
            "get": _operation(
                "The alert history, newest first, with each alert's webhook delivery state (admin key)",
                keyed=True,
                key_schemes=("adminToken",),
                parameters=[
                    {"name": name, "in": "query", "required": False, "schema": query_string}
                    for name in ("limit", "after", "kind")
                ],
                extra={"403": "admin endpoints are disabled"},
            )
        },
        "/v1/alerts/test": {
            "post": _operation(
                "Raise a test alert, delivered to every webhook like any other (admin key)",
                ok="201",
                keyed=True,
                key_schemes=("adminToken",),
                extra={"403": "admin endpoints are disabled"},
            )
        },
        "/v1/alerts/{alert_id}": {
            "get": _operation(
                "One alert with its delivery state (admin key)",
                keyed=True,
                key_schemes=("adminToken",),
                parameters=[_path_parameter("alert_id")],
                extra={"403": "admin endpoints are disabled"},
            )
        },
        "/v1/analytics": {"get": _analytics_operation()},
        **_org_paths(),
        "/v1/stripe/webhook": {"post": _operation("A Stripe event (signed): org top-ups, refunds, disputes")},
        "/healthz": {"get": _operation("Database and chain reachable", extra={"503": "degraded"})},
        "/metrics": {"get": _metrics_operation()},
    }


_ORG_ERRORS = {"403": "the caller's role or grant does not allow it", "409": "conflicts with the org's state"}


def _org_operation(
    summary: str,
    *,
    ok: str = "200",
    body: type[BaseModel] | None = None,
    ids: tuple[str, ...] = (),
    query: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An admin operation: the caller's wallet key, the org and resource ids in the path."""
    parameters = [_path_parameter(name) for name in ("org", *ids)]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in query
    ]
    return _operation(summary, ok=ok, body=body, keyed=True, parameters=parameters, extra=_ORG_ERRORS)


def _org_resource(name: str, noun: str, body: type[BaseModel], patch: type[BaseModel]) -> dict[str, Any]:
    base = f"/v1/orgs/{{org}}/{name}"
    one = f"{base}/{{{name[:-1]}}}"
    return {
        base: {
            "post": _org_operation(f"Create a {noun}", ok="201", body=body),
            "get": _org_operation(f"The {noun}s at or below the caller's grant"),
        },
        one: {
            "get": _org_operation(f"One {noun}", ids=(name[:-1],)),
            "patch": _org_operation(f"Change a {noun}", body=patch, ids=(name[:-1],)),
            "delete": _org_operation(f"Delete a {noun}", ids=(name[:-1],)),
        },
    }


def _org_paths() -> dict[str, Any]:
    return {
        "/v1/orgs": {
            "post": _operation(
                "Create an organization (the caller owns it)", ok="201", body=OrgBody, keyed=True
            ),
            "get": _operation("The caller's organizations", keyed=True),
        },
        "/v1/orgs/{org}": {
            "get": _org_operation("An organization"),
            "patch": _org_operation("Rename an organization", body=OrgBody),
            "delete": _org_operation("Delete an organization (revokes its keys)"),
        },
        **_org_resource("units", "unit", UnitBody, UnitPatch),
        **_org_resource("members", "member", MemberBody, MemberPatch),
        "/v1/orgs/{org}/keys": {
            "post": _org_operation("Issue an org key (shown once)", ok="201", body=KeyBody),
            "get": _org_operation("The org keys at or below the caller's grant"),
        },
        "/v1/orgs/{org}/keys/{key}": {
            "get": _org_operation("One org key", ids=("key",)),
            "delete": _org_operation("Revoke an org key", ids=("key",)),
        },
        **_org_resource("budgets", "budget", BudgetBody, BudgetPatch),
        **_org_resource("rate_limits", "rate limit", RateLimitBody, RateLimitPatch),
        "/v1/orgs/{org}/credits": {"get": _org_operation("The organization's credit")},
        "/v1/orgs/{org}/deposit_wallets": {
            "post": _org_operation(
                "Register the caller's wallet: its token transfers credit the org", ok="201"
            ),
            "get": _org_operation("Wallets whose token transfers credit the org"),
        },
        "/v1/orgs/{org}/deposit_wallets/{wallet}": {
            "delete": _org_operation("Unregister a deposit wallet", ids=("wallet",)),
        },
        "/v1/orgs/{org}/credits/topup": {
            "post": {
                **_operation(
                    "Top up the organization's credit with an x402 payment",
                    paid=True,
                    parameters=[
                        _path_parameter("org"),
                        {"name": "amount", "in": "query", "required": True, "schema": {"type": "string"}},
                    ],
                    extra=_ORG_ERRORS,
                ),
                "security": [{"apiKey": []}],
            }
        },
        "/v1/orgs/{org}/spend": {
            "get": _org_operation("Spend grouped by unit, member, key or model", query=("by", "period"))
        },
        "/v1/orgs/{org}/audit": {"get": _org_operation("The audit log, newest first")},
    }


def openapi_document(*, server_url: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "MegaRouter",
            "version": "1",
            "description": "OpenAI-compatible LLM router paid per call with x402 or by API key.",
        },
        "paths": _paths(),
        "components": _components(),
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    return document


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
