"""Relays an upstream stream to the caller as OpenAI-style SSE and charges exactly for what was produced.

Whatever ends a stream, what was produced is charged exactly once, with its usage event, and the hold is
resolved: the upstream finishes (charged by its reported usage); the upstream dies midway (an explicit
error event goes out, never a silent clean end, and the text received so far is charged, estimated when
the provider never reported usage); the caller disconnects, or stops reading for longer than a write may
wait (the upstream is closed and what it produced is charged likewise); the stream reaches its duration
bound (an error event, then the same charge); or the relay fails (charged, then the error travels on).
Both bounds keep a stream inside its hold's timeout (see `Settings.stream_hold_s_max`), so the sweeper
never expires the hold of a stream still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog
from aiohttp import web

from proxy.errors import ApiError, UpstreamTimeout
from proxy.openai_types import ChatCompletionChunk, ChatCompletionRequest
from proxy.providers.base import StreamEvent, TokenUsage, openai_usage
from proxy.providers.errors import UpstreamError
from proxy.providers.tokens import estimate_prompt_tokens, estimate_text_tokens
from proxy.serving.billing import BillingSession
from proxy.serving.dispatch import Dispatcher, OpenedStream, close_events
from proxy.serving.upstream_errors import api_error_for_upstream

__all__ = [
    "ChatChunkRenderer",
    "ClientStalled",
    "PersistingRenderer",
    "RawEventRenderer",
    "StreamBounds",
    "StreamRenderer",
    "relay_stream",
]

log = structlog.get_logger("megarouter.stream")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Produced:
    """What the upstream has produced so far, for charging when it never reports usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            if choice.delta.content:
                self.parts.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                if call.function is not None:
                    self.parts.append((call.function.name or "") + (call.function.arguments or ""))

    def add_raw(self, event: Mapping[str, Any]) -> None:
        """What an untranslated Messages event produced that its chunk does not carry: thinking."""
        delta = event.get("delta")
        thinking = isinstance(delta, Mapping) and delta.get("type") == "thinking_delta"
        if event.get("type") == "content_block_delta" and thinking:
            assert isinstance(delta, Mapping)
            self.parts.append(str(delta.get("thinking") or ""))

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


class StreamRenderer(Protocol):
    """The bytes a stream's caller receives, in the endpoint's own format, for each thing the relay sees.

    Pure: the relay does every write, bound and charge, so charging on a cut or a disconnect is the same
    whatever the format. `opened` is written first (it may be empty), then one `chunk` per upstream chunk,
    then `finished` with the usage the upstream reported (None: it reported none), or `failed` when the
    stream is cut (an explicit error event: a cut stream must never look complete).
    """

    def opened(self, *, model_id: str) -> bytes: ...

    def chunk(self, chunk: ChatCompletionChunk) -> bytes: ...

    def finished(self, *, reported: TokenUsage | None, charged: TokenUsage) -> bytes: ...

    def failed(self, error: ApiError) -> bytes: ...


@runtime_checkable
class PersistingRenderer(StreamRenderer, Protocol):
    """A renderer with something to store once a stream completed: `persist` runs after `finished` rendered
    the closing bytes and before they are written, so what a caller reads last is already stored (a
    Responses stream's response, which the caller's next request may continue at once)."""

    async def persist(self) -> None: ...


@runtime_checkable
class RawEventRenderer(StreamRenderer, Protocol):
    """A renderer of a stream passed through untranslated: `raw` is called for each upstream event
    instead of `chunk` (which such a stream never needs)."""

    def raw(self, event: Mapping[str, Any]) -> bytes: ...


class ChatChunkRenderer:
    """Chat completions' SSE: the chunks as they come, the usage chunk if asked for, then `[DONE]`."""

    def __init__(self, body: ChatCompletionRequest) -> None:
        self._body = body
        self._chunk_template: ChatCompletionChunk | None = None

    def opened(self, *, model_id: str) -> bytes:
        return b""

    def chunk(self, chunk: ChatCompletionChunk) -> bytes:
        self._chunk_template = self._chunk_template or chunk
        # Serialized by pydantic-core in one pass: a dict and json.dumps cost three times as much per chunk.
        return _sse(chunk.model_dump_json(exclude_none=True))

    def finished(self, *, reported: TokenUsage | None, charged: TokenUsage) -> bytes:
        del charged  # A chat completions stream shows only the usage the upstream reported.
        stream_options = self._body.stream_options
        usage_chunk = b""
        if stream_options is not None and stream_options.include_usage and reported is not None:
            usage_chunk = _sse(_usage_chunk(self._chunk_template, reported))
        return usage_chunk + _sse("[DONE]")

    def failed(self, error: ApiError) -> bytes:
        return _sse(error.body())


@dataclass(frozen=True)
class StreamBounds:
    """How long the relay may run in all, and how long one write may wait for the client to read."""

    duration_s: float
    write_timeout_s: float


class ClientStalled(Exception):
    """The client did not read a write within its bound: treated as gone."""


async def relay_stream(
    request: web.Request,
    *,
    body: ChatCompletionRequest,
    opened: OpenedStream,
    billing: BillingSession,
    dispatcher: Dispatcher,
    headers: dict[str, str],
    bounds: StreamBounds,
    renderer: StreamRenderer | None = None,
) -> web.StreamResponse:
    """`renderer` chooses the format the caller reads (default: chat completions' chunks)."""
    assert bounds.write_timeout_s > 0
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    relay = _Relay(
        body=body,
        opened=opened,
        response=response,
        write_timeout_s=bounds.write_timeout_s,
        renderer=renderer or ChatChunkRenderer(body),
    )
    # Past the bound (a duration of zero or less included) the relay stops where it is.
    duration_bound = asyncio.timeout(max(bounds.duration_s, 0.0))
    try:
        try:
            async with duration_bound:
                await _bounded(response.prepare(request), bounds.write_timeout_s)
                await relay.run()
        except UpstreamError as error:
            relay.upstream_error, relay.outcome = error, "stream_cut"
            log.warning("stream_cut_by_upstream", model=opened.model.id, kind=error.kind)
            # An explicit error event: a client must never mistake a cut stream for a complete one.
            await relay.write_quietly(relay.renderer.failed(api_error_for_upstream(error)))
        except TimeoutError:
            if not duration_bound.expired():
                # Not our bound (writes raise ClientStalled, adapters UpstreamError): a bug, fail loud.
                relay.outcome = "relay_failed"
                raise
            relay.outcome = "stream_duration_exceeded"
            log.warning("stream_duration_exceeded", model=opened.model.id, duration_s=bounds.duration_s)
            bound_error = UpstreamTimeout(
                "the stream reached its duration bound", code="stream_duration_exceeded"
            )
            await relay.write_quietly(relay.renderer.failed(bound_error))
        except ClientStalled:
            relay.outcome = "client_write_timeout"
            log.info("stream_client_stalled", model=opened.model.id, write_timeout_s=bounds.write_timeout_s)
        except ConnectionResetError:
            relay.outcome = "client_disconnected"
            log.info("stream_client_disconnected", model=opened.model.id)
        except asyncio.CancelledError:
            relay.outcome = "client_disconnected"
            log.info("stream_client_disconnected", model=opened.model.id)
            raise
        except Exception:
            # A bug in the relay: charged below (never left to the hold's timeout), then it fails loud.
            relay.outcome = "relay_failed"
            raise
    finally:
        # Exactly once, whatever ended the stream, even a cancellation arriving while the error event
        # above is written.
        await _finish_shielded(billing, dispatcher, relay)
    if relay.outcome != "client_write_timeout":  # A client that stopped reading gets no more writes.
        with contextlib.suppress(ConnectionResetError, ClientStalled):
            await _bounded(response.write_eof(), bounds.write_timeout_s)
    return response


async def _bounded(write: Awaitable[object], timeout_s: float) -> None:
    """One write to the client, bounded: a client that stops reading is a client that left."""
    try:
        async with asyncio.timeout(timeout_s):
            await write
    except TimeoutError:
        raise ClientStalled from None


class _Relay:
    """One stream's relay state: what was produced, the usage reported, and how it ended."""

    def __init__(
        self,
        *,
        body: ChatCompletionRequest,
        opened: OpenedStream,
        response: web.StreamResponse,
        write_timeout_s: float,
        renderer: StreamRenderer,
    ) -> None:
        self.body = body
        self.renderer = renderer
        self.opened = opened
        self.response = response
        self.write_timeout_s = write_timeout_s
        self.produced = _Produced()
        self.usage: TokenUsage | None = None
        self.upstream_error: UpstreamError | None = None
        self.outcome = "completed"
        self.started_s = time.monotonic() - opened.time_to_first_event_s

    async def write(self, data: bytes) -> None:
        await _bounded(self.response.write(data), self.write_timeout_s)

    async def write_quietly(self, data: bytes) -> None:
        # The caller may be gone already; what matters then is the charge, not the bytes.
        with contextlib.suppress(ConnectionResetError, ClientStalled):
            await self.write(data)

    async def run(self) -> None:
        leading = iter(self.opened.leading_events)
        if head := self.renderer.opened(model_id=self.opened.model.id):
            await self.write(head)
        event: StreamEvent | None = next(leading)
        while event is not None:
            if event.raw is not None:
                assert isinstance(self.renderer, RawEventRenderer), "a raw stream needs a raw renderer"
                if event.chunk is not None:
                    self.produced.add(event.chunk)
                self.produced.add_raw(event.raw)
                if data := self.renderer.raw(event.raw):
                    await self.write(data)
            elif event.chunk is not None:
                self.produced.add(event.chunk)
                if data := self.renderer.chunk(event.chunk):
                    await self.write(data)
            else:
                self.usage = event.usage
            event = next(leading, None) or await anext(self.opened.events, None)
        closing = self.renderer.finished(reported=self.usage, charged=self.charged_usage())
        if isinstance(self.renderer, PersistingRenderer):
            await self.renderer.persist()
        await self.write(closing)

    def charged_usage(self) -> TokenUsage:
        """The usage reported by the upstream, else estimated from what it produced."""
        return self.usage if self.usage is not None else self.produced.estimated_usage(self.body)


async def _finish_shielded(billing: BillingSession, dispatcher: Dispatcher, relay: _Relay) -> None:
    """Charges and records health in a task of its own: a disconnect cancelling the handler meanwhile
    cannot stop the charge half-way (the shielded task runs to its end)."""
    await asyncio.shield(_finish(billing, dispatcher, relay))


async def _finish(billing: BillingSession, dispatcher: Dispatcher, relay: _Relay) -> None:
    opened = relay.opened
    try:
        await close_events(opened.events)
    finally:
        charged_usage = relay.usage if relay.usage is not None else relay.produced.estimated_usage(relay.body)
        await billing.charge(
            opened.model,
            charged_usage,
            attempts=opened.attempts,
            outcome=relay.outcome,
            time_to_first_token_ms=int(opened.time_to_first_event_s * 1000),
        )
    await dispatcher.stream_finished(
        opened.model,
        latency_s=time.monotonic() - relay.started_s,
        ttft_s=opened.time_to_first_event_s,
        error=relay.upstream_error,
    )
