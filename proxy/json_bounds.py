"""Bounded JSON parsing for text from outside: request bodies and JSON the caller embeds in strings.

A deeply nested document recurses through the C parser, pydantic and json.dumps and can overflow the C
stack; a string with an unpaired surrogate escape (`\\ud800`) parses, then fails when it is encoded as UTF-8
to go upstream. Both are refused here, with ValueError, before they reach anything else. Pure: no I/O,
imports nothing from proxy/.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

__all__ = ["JSON_DEPTH_MAX", "JsonRefused", "json_depth_exceeds", "loads_bounded_json"]


class JsonRefused(ValueError):
    """The text is not JSON, nests too deep, or holds a string UTF-8 cannot encode."""


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


def loads_bounded_json(raw: bytes | str, *, depth_max: int = JSON_DEPTH_MAX) -> Any:
    """The parsed document; JsonRefused for bad JSON, nesting deeper than `depth_max`, unpaired surrogates."""
    raw_bytes = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if json_depth_exceeds(raw_bytes, depth_max=depth_max):
        raise JsonRefused(f"nests deeper than {depth_max} levels of arrays and objects")
    try:
        # ValueError also covers integers longer than Python's int-from-text digit limit (4,300 digits).
        document = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise JsonRefused(f"is not valid JSON: {error}") from error
    if _first_unencodable_string(document) is not None:
        raise JsonRefused(
            "holds a string that is not valid Unicode (an unpaired surrogate escape such as \\ud800)"
        )
    return document
