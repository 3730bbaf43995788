"""Request ids and error mapping. The only place that turns exceptions into HTTP responses.

The request id is always minted here (`req_<32 hex>`): it names the request's hold, capture, void and usage
event in the ledger and the usage log, so a caller must never be able to choose it. A caller's own
`X-Request-Id` is only bound to the logs as `client_request_id`, to correlate; the response's `X-Request-Id`
is ours, the id that `GET /v1/usage/{request_id}` answers for.
"""

from __future__ import annotations

import re

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.errors import ApiError, InvalidRequest, NotFound, PayloadTooLarge
from proxy.request_ids import is_server_request_id, new_request_id

__all__ = [
    "REQUEST_ID",
    "cors_headers",
    "cors_middleware",
    "error_middleware",
    "json_error",
    "request_id_middleware",
    "request_id_of",
]

REQUEST_ID_HEADER = "X-Request-Id"
# Browsers hide response headers from scripts unless named here; x402 clients in a page need these.
EXPOSED_HEADERS = (
    "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE, X-Request-Id, Retry-After, "
    "X-MegaRouter-Model, X-MegaRouter-Provider, X-MegaRouter-Strategy, X-MegaRouter-Attempts, "
    "X-MegaRouter-Quote-Nano-USD, X-MegaRouter-Cost-Nano-USD"
)
ALLOWED_REQUEST_HEADERS = (
    "Authorization, Content-Type, PAYMENT-SIGNATURE, X-PAYMENT, SIGN-IN-WITH-X, X-Request-Id, "
    "X-MegaRouter-Strategy, "
    "x-api-key, anthropic-version, anthropic-beta"
)
# A caller's id is logged only when it cannot smuggle anything into the logs.
_CLIENT_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
REQUEST_ID = web.RequestKey("REQUEST_ID", str)
log = structlog.get_logger("megarouter.http")


def request_id_of(request: web.Request) -> str:
    """The server-minted id of this request (set by request_id_middleware before any handler runs)."""
    request_id = request[REQUEST_ID]
    assert is_server_request_id(request_id)
    return request_id


def json_error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    structlog.contextvars.clear_contextvars()
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    inbound = request.headers.get(REQUEST_ID_HEADER, "")
    if _CLIENT_REQUEST_ID_PATTERN.fullmatch(inbound):
        structlog.contextvars.bind_contextvars(client_request_id=inbound)
    response = await handler(request)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def cors_headers() -> dict[str, str]:
    """For responses the middleware cannot touch because they stream: the handler sends these itself."""
    return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any origin may call the API (it is paid per request or by key, never by cookie)."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_REQUEST_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if not response.prepared:
        response.headers.update(cors_headers())
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        log.info("request_rejected", status=error.status, code=error.code, path=request.path)
        return json_error(error)
    except web.HTTPRequestEntityTooLarge as error:
        return json_error(PayloadTooLarge(f"request body is too large: {error.text}"))
    except web.HTTPNotFound:
        return json_error(NotFound(f"no route for {request.method} {request.path}", code="unknown_url"))
    except web.HTTPMethodNotAllowed:
        return json_error(InvalidRequest(f"method {request.method} not allowed on {request.path}"))
