"""Relays an upstream stream to the caller as OpenAI-style SSE and charges exactly for what was produced.

Three ways a stream ends: the upstream finishes (charged by its reported usage); the upstream dies midway
(an explicit error event goes out, never a silent clean end, and the text received so far is charged,
estimated when the provider never reported usage); or the caller disconnects (the upstream is closed and
what it produced is charged likewise). The hold is resolved on every path, cancellation included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import structlog
from aiohttp import web

from proxy.catalog import CatalogModel
from proxy.openai_types import ChatCompletionChunk, ChatCompletionRequest
from proxy.providers.base import StreamEvent, TokenUsage, openai_usage
from proxy.providers.errors import UpstreamError
from proxy.providers.tokens import estimate_prompt_tokens, estimate_text_tokens
from proxy.serving.billing import BillingSession
from proxy.serving.dispatch import Dispatcher, OpenedStream, close_events
from proxy.serving.upstream_errors import api_error_for_upstream

__all__ = ["relay_stream"]

log = structlog.get_logger("megarouter.stream")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Produced:
    """What the upstream has produced so far, for charging when it never reports usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chunk_template: ChatCompletionChunk | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.chunk_template = self.chunk_template or chunk
        for choice in chunk.choices:
            if choice.delta.content:
                self.parts.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                if call.function is not None:
                    self.parts.append((call.function.name or "") + (call.function.arguments or ""))

    def estimated_usage(self, body: ChatCompletionRequest) -> TokenUsage:
        text = "".join(self.parts)
        return TokenUsage(
            input_tokens=estimate_prompt_tokens(body),
            output_tokens=estimate_text_tokens(text) if text else 0,
            estimated=True,
        )


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _usage_chunk(template: ChatCompletionChunk | None, usage: TokenUsage) -> dict[str, Any]:
    return {
        "id": template.id if template else "chatcmpl-megarouter",
        "object": "chat.completion.chunk",
        "created": template.created if template else int(time.time()),
        "model": template.model if template else "",
        "choices": [],
        "usage": openai_usage(usage).model_dump(mode="json", exclude_none=True),
    }


async def relay_stream(
    request: web.Request,
    *,
    body: ChatCompletionRequest,
    opened: OpenedStream,
    billing: BillingSession,
    dispatcher: Dispatcher,
    headers: dict[str, str],
) -> web.StreamResponse:
    model: CatalogModel = opened.model
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    await response.prepare(request)
    produced = _Produced()
    usage: TokenUsage | None = None
    upstream_error: UpstreamError | None = None
    outcome = "completed"
    started_s = time.monotonic() - opened.time_to_first_event_s
    leading = iter(opened.leading_events)
    event: StreamEvent | None = next(leading)
    try:
        while event is not None:
            if event.chunk is not None:
                produced.add(event.chunk)
                await response.write(_sse(event.chunk.model_dump(mode="json", exclude_none=True)))
            else:
                usage = event.usage
            event = next(leading, None) or await anext(opened.events, None)
        if body.stream_options is not None and body.stream_options.include_usage and usage is not None:
            await response.write(_sse(_usage_chunk(produced.chunk_template, usage)))
        await response.write(_sse("[DONE]"))
    except UpstreamError as error:
        upstream_error, outcome = error, "stream_cut"
        api_error = api_error_for_upstream(error)
        log.warning("stream_cut_by_upstream", model=model.id, kind=error.kind)
        # An explicit error event: a client must never mistake a cut stream for a complete one.
        await _write_quietly(response, _sse(api_error.body()))
    except (ConnectionResetError, asyncio.CancelledError) as error:
        outcome = "client_disconnected"
        log.info("stream_client_disconnected", model=model.id)
        if isinstance(error, asyncio.CancelledError):
            await asyncio.shield(
                _finish(
                    billing, dispatcher, opened, produced, body, usage, outcome, started_s, upstream_error
                )
            )
            raise
    except Exception:
        # A bug in the relay: charge what was produced (never leave the hold to its timeout), then fail loud.
        await _finish(
            billing, dispatcher, opened, produced, body, usage, "relay_failed", started_s, upstream_error
        )
        raise
    await _finish(billing, dispatcher, opened, produced, body, usage, outcome, started_s, upstream_error)
    await _write_eof_quietly(response)
    return response


async def _finish(
    billing: BillingSession,
    dispatcher: Dispatcher,
    opened: OpenedStream,
    produced: _Produced,
    body: ChatCompletionRequest,
    usage: TokenUsage | None,
    outcome: str,
    started_s: float,
    upstream_error: UpstreamError | None,
) -> None:
    await close_events(opened.events)
    charged_usage = usage if usage is not None else produced.estimated_usage(body)
    await billing.charge(
        opened.model,
        charged_usage,
        attempts=opened.attempts,
        outcome=outcome,
        time_to_first_token_ms=int(opened.time_to_first_event_s * 1000),
    )
    await dispatcher.stream_finished(
        opened.model,
        latency_s=time.monotonic() - started_s,
        ttft_s=opened.time_to_first_event_s,
        error=upstream_error,
    )


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    # The caller may be gone already; what matters then is the charge, not the bytes.
    with contextlib.suppress(ConnectionResetError):
        await response.write(data)


async def _write_eof_quietly(response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
