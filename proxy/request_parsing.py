"""Reads and validates a JSON request body into a pydantic model, with OpenAI-style errors.

Owns the edge's JSON bounds: every request body is checked for nesting depth before it is parsed (a deep
document would recurse through the C parser, pydantic and json.dumps, and can overflow the C stack), and
for strings that cannot be encoded as UTF-8 (an unpaired `\\ud800` escape), which would fail later, after
money is held, when the request is sent upstream. Must not import anything that holds or pays.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from proxy.app_keys import SETTINGS
from proxy.errors import InvalidRequest, RequestTimeout

__all__ = ["JSON_DEPTH_MAX", "json_depth_exceeds", "parse_json_bounded", "read_body", "read_json_model"]

ModelT = TypeVar("ModelT", bound=BaseModel)
# Real requests nest about 10 levels (tool JSON schemas a few more); 64 leaves room and stays far below
# every recursion limit on the way (json, pydantic-core, json.dumps, the adapters).
JSON_DEPTH_MAX = 64
# A JSON string (escapes included) or any other run of bytes: strings are removed before brackets count.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# Indexed by byte value: +1 opens a level, -1 closes one (only brackets are left when it is used).
_BRACKET_STEP = [1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256)]


def json_depth_exceeds(raw: bytes, *, depth_max: int) -> bool:
    """Whether the brackets outside strings in `raw` nest deeper than `depth_max`; no recursion, O(len).

    Meant for text not yet known to be valid JSON: malformed text may count wrong, but then the parser
    refuses it anyway, and this never under-counts a document the parser would accept.
    """
    assert depth_max >= 1
    brackets = _JSON_STRING.sub(b"", raw).translate(None, delete=_NOT_BRACKETS)
    if len(brackets) <= depth_max:
        return False
    # map/accumulate/max all run in C: a few tens of ms for megabytes of brackets.
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > depth_max


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them and upstream APIs would refuse them later.
    raise ValueError(f"{name} is not valid JSON")


def _first_unencodable_string(document: Any) -> str | None:
    """A key or string value that UTF-8 cannot encode (an unpaired surrogate), or None. Iterative."""
    pending: list[Any] = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return value
    return None


def parse_json_bounded(raw: bytes, *, depth_max: int = JSON_DEPTH_MAX) -> Any:
    """The parsed JSON document, or InvalidRequest (400) for bad JSON, deep nesting or unpaired surrogates."""
    if json_depth_exceeds(raw, depth_max=depth_max):
        raise InvalidRequest(
            f"the body nests deeper than {depth_max} levels of arrays and objects", code="invalid_json"
        )
    try:
        # ValueError also covers integers longer than Python's int-from-text digit limit (4,300 digits).
        document = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}", code="invalid_json") from error
    if _first_unencodable_string(document) is not None:
        raise InvalidRequest(
            "the body contains a string that is not valid Unicode (an unpaired surrogate escape such as "
            "\\ud800)",
            code="invalid_json",
        )
    return document


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
