"""HTTP plumbing shared by the adapters: bounded requests, SSE reading, and HTTP failures → UpstreamError.

Every wait here has a bound (the adapter's timeout_s / stream_idle_s). Provider-specific error bodies are
decoded by the adapter (it passes the message and code it found); the status → kind rule lives here once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from proxy.providers.errors import UpstreamError, UpstreamErrorKind

__all__ = [
    "TRANSPORT_ERRORS",
    "SseEvent",
    "decode_json_object",
    "error_for_status",
    "iter_sse",
    "open_response",
    "parse_retry_after_s",
    "upstream_error_for_exception",
]

RETRY_AFTER_S_MAX = (
    3600.0  # A longer Retry-After is treated as this: the circuit breaker needs a finite bound.
)
SSE_LINE_BYTES_MAX = 1 << 20
CONTEXT_LENGTH_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "input is too long",
    "maximum context",
    "too many tokens",
    "exceeds the maximum number of tokens",
)


def parse_retry_after_s(headers: Mapping[str, str], *, now_unix_s: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (delta seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return min(max(float(raw_ms) / 1000.0, 0.0), RETRY_AFTER_S_MAX)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return min(max(float(raw), 0.0), RETRY_AFTER_S_MAX)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_unix_s is None else now_unix_s
    return min(max(when.timestamp() - now, 0.0), RETRY_AFTER_S_MAX)


def _kind_for_status(status: int, message: str, provider_code: str | None) -> UpstreamErrorKind:
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded" if status == 529 else "server_error"
    if status >= 500:
        return "server_error"
    if status == 408:
        return "timeout"
    if status == 401:
        return "auth"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status == 413:
        return "payload_too_large"
    hint = f"{provider_code or ''} {message}".lower()
    if any(marker in hint for marker in CONTEXT_LENGTH_HINTS):
        return "context_length"
    return "bad_request"


def error_for_status(
    status: int,
    *,
    message: str,
    headers: Mapping[str, str],
    provider_code: str | None = None,
    retry_after_s: float | None = None,
) -> UpstreamError:
    """The UpstreamError for a non-2xx answer. `retry_after_s` overrides the headers (Gemini's RetryInfo)."""
    assert status >= 300
    kind = _kind_for_status(status, message, provider_code)
    if retry_after_s is None:
        retry_after_s = parse_retry_after_s(headers)
    return UpstreamError(
        kind,
        message or f"HTTP {status}",
        status=status,
        retry_after_s=retry_after_s,
        provider_code=provider_code,
    )


def upstream_error_for_exception(error: BaseException, *, streaming: bool) -> UpstreamError:
    """Transport failures: our timeout, a refused or dropped connection, a body cut short."""
    if isinstance(error, TimeoutError):
        return UpstreamError("timeout", "no answer from the upstream in time")
    if isinstance(error, aiohttp.ClientPayloadError):
        kind: UpstreamErrorKind = "stream_interrupted" if streaming else "connection"
        return UpstreamError(kind, f"response body cut short: {error}")
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        return UpstreamError("connection", f"{type(error).__name__}: {error}")
    if isinstance(error, aiohttp.ClientResponseError):
        return UpstreamError("invalid_response", f"{type(error).__name__}: {error}")
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError | ValueError):
        return UpstreamError("invalid_response", f"unreadable body: {error}")
    assert isinstance(error, aiohttp.ClientError), f"unexpected transport error {error!r}"
    return UpstreamError("connection", f"{type(error).__name__}: {error}")


def decode_json_object(text: str) -> dict[str, Any]:
    """A JSON object from an upstream body; anything else is an invalid response."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than the recursion limit.
        raise UpstreamError("invalid_response", f"body is not JSON: {text[:200]!r}") from error
    if not isinstance(value, dict):
        raise UpstreamError("invalid_response", f"body is not a JSON object: {text[:200]!r}")
    return value


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None
    data: str


async def iter_sse(
    content: aiohttp.StreamReader, *, first_s: float, idle_s: float
) -> AsyncIterator[SseEvent]:
    """Server-sent events from a response body: the first bytes awaited for at most `first_s` seconds, each
    later read for at most `idle_s` (a stalled stream is a timeout, not a hang).

    Follows the HTML spec's parsing rules that matter here: `data:` lines join with newlines, one leading
    space after the colon is dropped, `:` lines are comments, a blank line dispatches. Ends at EOF.

    Reads whatever the network delivered (often several events at once) under one timeout and splits the
    lines itself: a timeout per line cost more than the rest of relaying a chunk.
    """
    assert first_s > 0
    assert idle_s > 0
    event: str | None = None
    data: list[str] = []
    pending = b""  # The start of a line whose end has not arrived yet.
    wait_s = first_s
    while True:
        async with asyncio.timeout(wait_s):
            received = await content.readany()
        wait_s = idle_s
        if received:
            lines = (pending + received).split(b"\n")
            pending = lines.pop()
            if len(pending) > SSE_LINE_BYTES_MAX:
                raise UpstreamError("invalid_response", "SSE line too long")
        else:  # EOF: a last line without its newline still counts.
            lines, pending = ([pending] if pending else []), b""
        for raw in lines:
            if len(raw) > SSE_LINE_BYTES_MAX:
                raise UpstreamError("invalid_response", "SSE line too long")
            line = raw.decode("utf-8").removesuffix("\r")
            if not line:
                if data:
                    yield SseEvent(event, "\n".join(data))
                event, data = None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
        if not received:
            if data:
                yield SseEvent(event, "\n".join(data))
            return


# What a failing transport raises; adapters turn these into UpstreamError with upstream_error_for_exception.
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError, UnicodeDecodeError)

ErrorDecoder = Callable[[int, Mapping[str, str], str], UpstreamError]


@asynccontextmanager
async def open_response(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: dict[str, Any],
    headers: Mapping[str, str],
    timeout_s: float,
    decode_error: ErrorDecoder,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POSTs JSON and yields the response once its status is 2xx; otherwise raises the decoded error.

    Only the wait for the status line is bounded here; the caller bounds the reading of the body.
    """
    assert timeout_s > 0
    async with asyncio.timeout(timeout_s):
        response = await session.post(url, json=body, headers=dict(headers))
    try:
        if response.status >= 300:
            async with asyncio.timeout(timeout_s):
                text = await response.text(errors="replace")
            raise decode_error(response.status, response.headers, text)
        yield response
    finally:
        response.release()
