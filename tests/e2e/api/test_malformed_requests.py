"""Malformed requests get OpenAI-style 4xx errors and change nothing: no hold, ledger row or upstream call.

Method: raw HTTP against the running router (SQLite), comparing the router's snapshot before and after.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.fixtures.app import RunningRouter

GOOD: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def _error(router: RunningRouter, **request: Any) -> tuple[int, dict[str, Any]]:
    response = await router.client.post("/v1/chat/completions", **request)
    body: dict[str, Any] = await response.json()
    return response.status, body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "param"),
    [
        pytest.param(
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_json",
            None,
            id="invalid-json",
        ),
        pytest.param({"json": ["not", "an", "object"]}, 400, "invalid_json", None, id="not-an-object"),
        pytest.param(
            {"json": {**GOOD, "temperature": "hot"}}, 400, "invalid_value", "temperature", id="bad-type"
        ),
        pytest.param({"json": {**GOOD, "messages": []}}, 400, "invalid_value", "messages", id="no-messages"),
        pytest.param(
            {"json": {**GOOD, "model": "nobody/no-such-model"}},
            404,
            "model_not_found",
            "model",
            id="unknown-model",
        ),
        pytest.param(
            {"json": {**GOOD, "route": {"strategy": "fastest"}}},
            400,
            "invalid_route",
            "route.strategy",
            id="bad-route",
        ),
        pytest.param(
            {"json": {**GOOD, "messages": [{"role": "user", "content": "x" * 600_000}]}},
            400,
            "context_length_exceeded",
            "messages",
            id="over-context-window",
        ),
        pytest.param(
            # A stream, not raw bytes: aiohttp's client refuses to send megabytes of raw bytes in one piece.
            {
                "data": io.BytesIO(b"{" + b" " * (5 * 1024 * 1024) + b"}"),
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "request_too_large",
            None,
            id="oversized-body",
        ),
    ],
)
async def test_malformed_request_is_refused_and_changes_nothing(
    router: RunningRouter, request_kwargs: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    before = await router.snapshot()
    got_status, body = await _error(router, **request_kwargs)
    assert got_status == status, body
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert {"message", "type", "code", "param"} <= set(body["error"])
    assert await router.snapshot() == before
