"""Request ids and error mapping. The only place that turns exceptions into HTTP responses."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.errors import ApiError, InvalidRequest, NotFound, PayloadTooLarge

__all__ = ["error_middleware", "json_error", "request_id_middleware"]

REQUEST_ID_HEADER = "X-Request-Id"
# An inbound id is reused only when it cannot smuggle anything into logs or headers.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
log = structlog.get_logger("megarouter.http")


def json_error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    structlog.contextvars.clear_contextvars()
    inbound = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = inbound if _REQUEST_ID_PATTERN.fullmatch(inbound) else f"req_{uuid.uuid4().hex}"
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        log.info("request_rejected", status=error.status, code=error.code, path=request.path)
        return json_error(error)
    except web.HTTPRequestEntityTooLarge as error:
        return json_error(PayloadTooLarge(f"request body is larger than {error.max_size} bytes"))
    except web.HTTPNotFound:
        return json_error(NotFound(f"no route for {request.method} {request.path}", code="unknown_url"))
    except web.HTTPMethodNotAllowed:
        return json_error(InvalidRequest(f"method {request.method} not allowed on {request.path}"))
