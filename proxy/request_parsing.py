"""Reads and validates a JSON request body into a pydantic model, with OpenAI-style errors."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from proxy.errors import InvalidRequest

__all__ = ["read_json_model"]

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_json_model(request: web.Request, model_type: type[ModelT]) -> ModelT:
    """The body as `model_type`; bad JSON or a bad field is a 400 naming the field."""
    # Any Content-Type is read as JSON, as OpenAI does: curl -d sends form encoding by default.
    raw = await request.read()
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}", code="invalid_json") from error
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
