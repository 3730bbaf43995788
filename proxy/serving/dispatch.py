"""Calls the plan's candidates in order until one serves, recording health and every attempt.

Failover happens on upstream failures another deployment could serve (429, 5xx, timeouts, connection
errors), within an attempt limit and an overall deadline, and never on the caller's own errors. For a
stream, a candidate counts as serving once its first event that produces something has arrived (events
that carry nothing, like OpenAI's opening role chunk, are held back until then), before any byte reaches
the caller; after that, the stream relay owns the failure.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer

from proxy.catalog import CatalogModel
from proxy.errors import ApiError, UpstreamUnavailable
from proxy.openai_types import ChatCompletionRequest, EmbeddingsRequest
from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.base import ChatResult, EmbeddingsResult, StreamEvent, TokenUsage
from proxy.providers.errors import UpstreamError
from proxy.routing.failover import should_fail_over
from proxy.routing.health import HealthTracker
from proxy.serving.observers import AttemptObserver, notify
from proxy.serving.planning import ServePlan
from proxy.serving.upstream_errors import api_error_for_upstream
from proxy.serving.upstreams import Upstreams
from proxy.serving.usage_log import Attempt

__all__ = ["Dispatcher", "NoCandidateServed", "OpenedStream", "attempts_header", "close_events"]

log = structlog.get_logger("megarouter.dispatch")
R = TypeVar("R")


# Leading events that carry nothing (OpenAI's role-only first chunk) held back at most: bounded buffering.
PREAMBLE_EVENTS_MAX = 8
# Anthropic's events that produce nothing when they come without a translated chunk (a thinking or text
# block's start, a ping): held back like a role chunk. Deltas, thinking ones included, produce something.
RAW_PREAMBLE_TYPES = frozenset({"message_start", "ping", "content_block_start", "content_block_stop"})


@dataclass
class OpenedStream:
    """A candidate that produced its first meaningful event; `leading_events` end with that event."""

    model: CatalogModel
    leading_events: tuple[StreamEvent, ...]
    events: AsyncIterator[StreamEvent]
    attempts: list[Attempt]
    time_to_first_event_s: float


def _is_preamble(event: StreamEvent) -> bool:
    """An event that produces nothing: a chunk with no text, tool call, refusal, finish or usage.

    Providers open a stream with one (OpenAI's `{"role": "assistant", "content": ""}`) as soon as they
    accept the request, before generating anything. A failure after it is still a failure before the
    first token, so the dispatcher holds such events back and may still fail over invisibly.
    """
    chunk = event.chunk
    if chunk is None:
        # An untranslated event without a translation: its opening and keep-alive events produce nothing.
        return event.raw is not None and event.raw.get("type") in RAW_PREAMBLE_TYPES
    if chunk.usage is not None:
        return False
    return all(
        not choice.delta.content
        and not choice.delta.tool_calls
        and not choice.delta.refusal
        and choice.finish_reason is None
        for choice in chunk.choices
    )


async def _first_meaningful_events(events: AsyncIterator[StreamEvent]) -> tuple[StreamEvent, ...]:
    """The leading events up to and including the first that produces something.

    Raises the upstream's error, or StopAsyncIteration when the stream ends before producing anything.
    """
    leading = [await anext(events)]
    while _is_preamble(leading[-1]) and len(leading) < PREAMBLE_EVENTS_MAX:
        leading.append(await anext(events))
    assert leading
    return tuple(leading)


@dataclass
class _Run:
    candidates: tuple[CatalogModel, ...]
    deadline_s: float
    attempts: list[Attempt] = field(default_factory=list)
    last_error: UpstreamError | None = None


async def close_events(events: AsyncIterator[StreamEvent]) -> None:
    """Closes an upstream stream early (its connection is released) when it is an async generator."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def attempts_header(attempts: list[Attempt]) -> str:
    """`model@provider=outcome` per attempt, in order: why each failed, for the caller to see."""
    return ", ".join(f"{attempt.model_id}={attempt.outcome}" for attempt in attempts)


class Dispatcher:
    def __init__(
        self,
        *,
        upstreams: Upstreams,
        tracker: HealthTracker,
        attempts_max: int,
        deadline_s: float,
        attempt_observers: Sequence[AttemptObserver] = (),
        tracer: Tracer | None = None,
    ) -> None:
        assert attempts_max >= 1
        assert deadline_s > 0
        self._upstreams = upstreams
        self._tracker = tracker
        self._attempts_max = attempts_max
        self._deadline_s = deadline_s
        # Each upstream attempt that ended (a breaker skip is not one) is shown to these, and traced.
        self._attempt_observers = tuple(attempt_observers)
        self._tracer = tracer or NoOpTracer()

    def _recorded(self, run: _Run, attempt: Attempt, span: Span) -> None:
        run.attempts.append(attempt)
        span.set_attribute("megarouter.attempt.outcome", attempt.outcome)
        if attempt.status is not None:
            span.set_attribute("http.response.status_code", attempt.status)
        if attempt.outcome != "ok":
            span.set_attribute("error.type", attempt.outcome)
            span.set_status(Status(StatusCode.ERROR, attempt.outcome))
        notify(self._attempt_observers, attempt)

    def _attempt_span(self, model: CatalogModel, attempt: int) -> AbstractContextManager[Span]:
        """A child span of the request's span for one upstream call (until its answer or first event)."""
        return self._tracer.start_as_current_span(
            f"upstream {model.id}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.provider.name": model.provider,
                "gen_ai.request.model": model.upstream_model,
                "megarouter.deployment": model.id,
                "megarouter.attempt": attempt,
            },
        )

    def _body_for(
        self, body: ChatCompletionRequest, plan: ServePlan, model: CatalogModel
    ) -> ChatCompletionRequest:
        # The upstream may never produce more than this candidate's quote paid for.
        output_tokens_max = plan.quotes[model.id].output_tokens_max
        return body.model_copy(update={"max_tokens": output_tokens_max, "max_completion_tokens": None})

    async def _admitted(self, run: _Run) -> AsyncIterator[tuple[int, CatalogModel]]:
        attempt = 0
        for model in run.candidates:
            if attempt >= self._attempts_max or time.monotonic() >= run.deadline_s:
                return
            if not await self._tracker.try_acquire(model.id):
                run.attempts.append(
                    Attempt(model_id=model.id, provider=model.provider, outcome="breaker_open", latency_ms=0)
                )
                continue
            attempt += 1
            yield attempt, model

    async def _failed(
        self, run: _Run, model: CatalogModel, error: UpstreamError, started_s: float, attempt: int, span: Span
    ) -> bool:
        """Records a failure; True when the next candidate may be tried."""
        await self._tracker.record_failure(model.id, kind=error.kind, retry_after_s=error.retry_after_s)
        self._recorded(
            run,
            Attempt(
                model_id=model.id,
                provider=model.provider,
                outcome=error.kind,
                status=error.status,
                latency_ms=int((time.monotonic() - started_s) * 1000),
            ),
            span,
        )
        run.last_error = error
        log.warning(
            "upstream_attempt_failed", model=model.id, kind=error.kind, status=error.status, attempt=attempt
        )
        return should_fail_over(
            error.kind,
            bytes_sent_to_client=False,
            attempt=attempt,
            attempts_max=self._attempts_max,
            deadline_left_s=run.deadline_s - time.monotonic(),
        )

    def _exhausted(self, run: _Run) -> ApiError:
        if run.last_error is not None:
            return api_error_for_upstream(run.last_error)
        return UpstreamUnavailable(
            "no candidate deployment is available (breakers open)", code="no_healthy_deployment"
        )

    async def complete(
        self, body: ChatCompletionRequest, plan: ServePlan
    ) -> tuple[ChatResult, CatalogModel, list[Attempt]]:
        async def send(model: CatalogModel) -> ChatResult:
            return await self._upstreams.adapter_for(model).chat(self._body_for(body, plan, model))

        return await self._first_served(plan.candidates, send)

    async def embed(
        self, body: EmbeddingsRequest, candidates: Sequence[CatalogModel]
    ) -> tuple[EmbeddingsResult, CatalogModel, list[Attempt]]:
        """Embeddings through the same admission, failover and deadline as a chat completion."""

        async def send(model: CatalogModel) -> EmbeddingsResult:
            return await self._upstreams.adapter_for(model).embeddings(body)

        return await self._first_served(candidates, send)

    async def _first_served(
        self, candidates: Sequence[CatalogModel], send: Callable[[CatalogModel], Awaitable[R]]
    ) -> tuple[R, CatalogModel, list[Attempt]]:
        """The first candidate's answer that `send` gets without an upstream failure worth failing over."""
        run = _Run(candidates=tuple(candidates), deadline_s=time.monotonic() + self._deadline_s)
        async for attempt, model in self._admitted(run):
            with self._attempt_span(model, attempt) as span:
                started_s = time.monotonic()
                try:
                    result = await send(model)
                except UpstreamError as error:
                    if await self._failed(run, model, error, started_s, attempt, span):
                        continue
                    break
                latency_s = time.monotonic() - started_s
                await self._tracker.record_success(model.id, latency_s=latency_s)
                ok = Attempt(
                    model_id=model.id, provider=model.provider, outcome="ok", latency_ms=int(latency_s * 1000)
                )
                self._recorded(run, ok, span)
                return result, model, run.attempts
        raise NoCandidateServed(self._exhausted(run), run.attempts)

    def _raw_adapter_for(self, model: CatalogModel) -> AnthropicAdapter:
        adapter = self._upstreams.adapter_for(model)
        assert isinstance(adapter, AnthropicAdapter), "only Anthropic deployments take a Messages body"
        return adapter

    async def complete_raw(
        self, body: Mapping[str, Any], plan: ServePlan
    ) -> tuple[tuple[dict[str, Any], TokenUsage], CatalogModel, list[Attempt]]:
        """A Messages body passed through to the plan's (Anthropic) candidates, failover as `complete`."""

        async def send(model: CatalogModel) -> tuple[dict[str, Any], TokenUsage]:
            return await self._raw_adapter_for(model).messages_raw(_raw_body_for(body, plan, model))

        return await self._first_served(plan.candidates, send)

    async def open_stream(self, body: ChatCompletionRequest, plan: ServePlan) -> OpenedStream:
        return await self._first_opened(
            plan,
            lambda model: self._upstreams.adapter_for(model).chat_stream(self._body_for(body, plan, model)),
        )

    async def open_raw_stream(self, body: Mapping[str, Any], plan: ServePlan) -> OpenedStream:
        """A Messages body streamed through untranslated, admission and failover as `open_stream`."""
        return await self._first_opened(
            plan,
            lambda model: self._raw_adapter_for(model).messages_raw_stream(_raw_body_for(body, plan, model)),
        )

    async def _first_opened(
        self, plan: ServePlan, open_events: Callable[[CatalogModel], AsyncIterator[StreamEvent]]
    ) -> OpenedStream:
        run = _Run(candidates=plan.candidates, deadline_s=time.monotonic() + self._deadline_s)
        async for attempt, model in self._admitted(run):
            with self._attempt_span(model, attempt) as span:
                started_s = time.monotonic()
                events = open_events(model)
                try:
                    leading_events = await _first_meaningful_events(events)
                except (UpstreamError, StopAsyncIteration) as error:
                    await close_events(events)
                    failure = (
                        error
                        if isinstance(error, UpstreamError)
                        else UpstreamError("stream_interrupted", "the stream ended before its first event")
                    )
                    if await self._failed(run, model, failure, started_s, attempt, span):
                        continue
                    break
                first_s = time.monotonic() - started_s
                ok = Attempt(
                    model_id=model.id, provider=model.provider, outcome="ok", latency_ms=int(first_s * 1000)
                )
                self._recorded(run, ok, span)
            return OpenedStream(
                model=model,
                leading_events=leading_events,
                events=events,
                attempts=run.attempts,
                time_to_first_event_s=first_s,
            )
        raise NoCandidateServed(self._exhausted(run), run.attempts)

    async def stream_finished(
        self, model: CatalogModel, *, latency_s: float, ttft_s: float, error: UpstreamError | None
    ) -> None:
        if error is None:
            await self._tracker.record_success(model.id, latency_s=latency_s, ttft_s=ttft_s)
        else:
            await self._tracker.record_failure(model.id, kind=error.kind, retry_after_s=error.retry_after_s)


def _raw_body_for(body: Mapping[str, Any], plan: ServePlan, model: CatalogModel) -> dict[str, Any]:
    """As `_body_for`: the upstream may never produce more than this candidate's quote paid for."""
    max_tokens = body["max_tokens"]
    assert isinstance(max_tokens, int)
    return {**body, "max_tokens": min(max_tokens, plan.quotes[model.id].output_tokens_max)}


class NoCandidateServed(Exception):
    """No candidate served: the API error to render and the attempts that led there (for billing records)."""

    def __init__(self, error: ApiError, attempts: list[Attempt]) -> None:
        super().__init__(error.message)
        error.headers["X-MegaRouter-Attempts"] = attempts_header(attempts)
        self.error = error
        self.attempts = attempts
