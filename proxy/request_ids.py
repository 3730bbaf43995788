"""Request ids: minted by the server only, because they name ledger transactions and stored records.

A request's hold, capture and void are keyed `<request id>:hold|capture|void`, and its usage event is
looked up by the id. Were a caller able to choose it, a repeated id would replay an earlier request's
captured hold (and be served again for free), so the id is always `req_` and 32 hex digits of a fresh
uuid4, and every place that keys money by it asserts that shape.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["is_server_request_id", "new_request_id"]

_SERVER_REQUEST_ID_PATTERN = re.compile(r"^req_[0-9a-f]{32}$")


def new_request_id() -> str:
    request_id = f"req_{uuid.uuid4().hex}"
    assert is_server_request_id(request_id)
    return request_id


def is_server_request_id(request_id: str) -> bool:
    """Whether `request_id` has the shape `new_request_id` mints (a caller's header never becomes one)."""
    return _SERVER_REQUEST_ID_PATTERN.fullmatch(request_id) is not None
