"""Reads and validates a JSON request body into a pydantic model, with OpenAI-style errors.

Every body is read within a time bound and parsed through proxy/json_bounds.py (depth, Unicode), so a
body that could crash the process or fail after money is held is a 400 here. Must not hold or pay.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from proxy.api.app_keys import SETTINGS
from proxy.errors import InvalidRequest, RequestTimeout
from proxy.json_bounds import JSON_DEPTH_MAX, JsonRefused, loads_bounded_json

__all__ = ["parse_json_bounded", "read_body", "read_json_model"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json_bounded(raw: bytes, *, depth_max: int = JSON_DEPTH_MAX) -> Any:
    """The parsed JSON document, or InvalidRequest (400) for bad JSON, deep nesting or unpaired surrogates."""
    try:
        return loads_bounded_json(raw, depth_max=depth_max)
    except JsonRefused as error:
        raise InvalidRequest(f"the body {error}", code="invalid_json") from error


async def read_body(request: web.Request) -> bytes:
    """The raw body, read within the configured time (a client trickling bytes holds a connection)."""
    timeout_s = request.app[SETTINGS].request_body_read_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError as error:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s} s") from error


async def read_json_model(request: web.Request, model_type: type[ModelT]) -> ModelT:
    """The body as `model_type`; bad JSON or a bad field is a 400 naming the field."""
    # Any Content-Type is read as JSON, as OpenAI does: curl -d sends form encoding by default.
    raw = await read_body(request)
    document = parse_json_bounded(raw)
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    try:
        return model_type.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(
            f"{param or 'body'}: {first['msg']}", code="invalid_value", param=param
        ) from error
