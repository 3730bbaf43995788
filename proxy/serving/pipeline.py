"""The one pipeline of every paid endpoint: quote → hold → dispatch (failover, breakers, deadline) → capture
with its usage event → the routing headers. Handlers parse, call it, and render what it returns.

Every path that took money ends with the hold resolved exactly once: captured at the real cost (with the
usage event that explains it, in the same database transaction), or voided when no candidate served, so a
failed inference costs nothing and leaves an x402 payment as the payer's credit. Every error raised after
an x402 payment settled carries its PAYMENT-RESPONSE header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Tracer

from proxy.accounts.principal import KeyPrincipal
from proxy.accounts.sign_in_with_x import WalletSignIns
from proxy.catalog import CatalogModel
from proxy.errors import InvalidRequest
from proxy.faults import crash_if_enabled
from proxy.openai_types import ChatCompletionRequest, EmbeddingsRequest
from proxy.payments.gate import PaymentGate
from proxy.providers.base import ChatResult, EmbeddingsResult
from proxy.providers.errors import UnsupportedRequest
from proxy.serving.billing import Billing, BillingSession
from proxy.serving.dispatch import Dispatcher, NoCandidateServed, OpenedStream, attempts_header
from proxy.serving.embeddings_plan import EmbeddingsPlan
from proxy.serving.payer import open_paid_session, sign_in_wallet, with_payment_outcome
from proxy.serving.planning import ServePlan
from proxy.serving.stream_relay import RawEventRenderer, StreamBounds, StreamRenderer, relay_stream
from proxy.serving.usage_log import Attempt
from proxy.settings import Settings

__all__ = ["PaidCall", "Pipeline", "Served", "routing_headers"]

log = structlog.get_logger("megarouter.pipeline")
R = TypeVar("R")


@dataclass(frozen=True)
class PaidCall:
    """What the handler resolved about the request: who calls (None: x402 only) and under which id.

    `request` is where the x402 payment headers are read and a stream is written; `stream_headers` are
    the headers middlewares would add, which a response already streaming must carry itself (CORS).
    `sign_in_header`: a keyless caller's `SIGN-IN-WITH-X` proof (checked when the quote is known, so that
    a refusal can carry the offer).
    """

    request: web.Request
    principal: KeyPrincipal | None
    request_id: str
    stream_headers: Mapping[str, str]
    sign_in_header: str | None = None


@dataclass(frozen=True)
class Served(Generic[R]):
    """An upstream's answer, the deployment that gave it, and the headers to answer with."""

    result: R
    model: CatalogModel
    headers: dict[str, str]


def routing_headers(
    *,
    model: CatalogModel,
    strategy: str | None,
    attempts: list[Attempt],
    quote_nano_usd: int,
    cost_nano_usd: int | None,
) -> dict[str, str]:
    """Which deployment served, how it was chosen, every attempt, the quote held and (once known) the cost."""
    headers = {
        "X-MegaRouter-Model": model.id,
        "X-MegaRouter-Provider": model.provider,
        "X-MegaRouter-Attempts": attempts_header(attempts),
        "X-MegaRouter-Quote-Nano-USD": str(quote_nano_usd),
    }
    if strategy is not None:
        headers["X-MegaRouter-Strategy"] = strategy
    if cost_nano_usd is not None:
        headers["X-MegaRouter-Cost-Nano-USD"] = str(cost_nano_usd)
    return headers


class Pipeline:
    def __init__(
        self,
        *,
        gate: PaymentGate,
        billing: Billing,
        dispatcher: Dispatcher,
        settings: Settings,
        tracer: Tracer | None = None,
        sign_ins: WalletSignIns | None = None,
    ) -> None:
        self._sign_ins = sign_ins
        self._gate = gate
        self._billing = billing
        self._dispatcher = dispatcher
        self._settings = settings
        self._tracer = tracer or NoOpTracer()

    def _request_span(
        self, operation: str, call: PaidCall, *, model: str, max_tokens: int | None = None
    ) -> AbstractContextManager[Span]:
        """The request's span: the payment, every upstream attempt and the charge happen inside it (the
        usage event's observer adds the response model, provider and token counts)."""
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "megarouter.request_id": call.request_id,
        }
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        return self._tracer.start_as_current_span(
            f"{operation} {model}", kind=SpanKind.SERVER, attributes=attributes
        )

    async def chat_completion(
        self, call: PaidCall, body: ChatCompletionRequest, plan: ServePlan
    ) -> Served[ChatResult]:
        with self._request_span("chat", call, model=body.model, max_tokens=body.output_tokens_max):
            return await self._chat_completion(call, body, plan)

    async def chat_stream(
        self,
        call: PaidCall,
        body: ChatCompletionRequest,
        plan: ServePlan,
        *,
        renderer: StreamRenderer | None = None,
    ) -> web.StreamResponse:
        """`renderer`: the format the caller reads (default: chat completions' chunks)."""
        with self._request_span("chat", call, model=body.model, max_tokens=body.output_tokens_max):
            return await self._chat_stream(call, body, plan, renderer=renderer)

    async def messages_raw(
        self, call: PaidCall, body: Mapping[str, Any], plan: ServePlan
    ) -> Served[dict[str, Any]]:
        """A Messages body passed through untranslated (`plan` from proxy/serving/passthrough.py): the
        upstream's Message as it came, held, failed over and charged as a chat completion."""
        with self._request_span("chat", call, model=str(body["model"]), max_tokens=body["max_tokens"]):
            billing, payment_headers = await self._hold(call, plan, streamed=False)
            (message, usage), model, attempts = await self._dispatched(
                billing, payment_headers, lambda: self._dispatcher.complete_raw(body, plan), param="messages"
            )
            cost_nano_usd = await billing.charge(model, usage, attempts=attempts, outcome="completed")
            headers = routing_headers(
                model=model,
                strategy=plan.strategy,
                attempts=attempts,
                quote_nano_usd=plan.hold_nano_usd,
                cost_nano_usd=cost_nano_usd,
            )
            settled = self._upto_settled(call, plan, billing)
            return Served(result=message, model=model, headers={**payment_headers, **settled, **headers})

    async def messages_raw_stream(
        self,
        call: PaidCall,
        body: Mapping[str, Any],
        plan: ServePlan,
        *,
        translated: ChatCompletionRequest,
        renderer: RawEventRenderer,
    ) -> web.StreamResponse:
        """A Messages body streamed through untranslated; `translated` (the same request in the internal
        format) estimates the prompt should the stream end without reporting usage."""
        assert translated.stream
        with self._request_span("chat", call, model=str(body["model"]), max_tokens=body["max_tokens"]):
            return await self._stream(
                call,
                translated,
                plan,
                open_stream=lambda: self._dispatcher.open_raw_stream(body, plan),
                renderer=renderer,
            )

    async def embeddings(
        self, call: PaidCall, body: EmbeddingsRequest, plan: EmbeddingsPlan
    ) -> Served[EmbeddingsResult]:
        with self._request_span("embeddings", call, model=body.model):
            return await self._embeddings(call, body, plan)

    async def _chat_completion(
        self, call: PaidCall, body: ChatCompletionRequest, plan: ServePlan
    ) -> Served[ChatResult]:
        assert not body.stream
        billing, payment_headers = await self._hold(call, plan, streamed=False)
        result, model, attempts = await self._dispatched(
            billing, payment_headers, lambda: self._dispatcher.complete(body, plan), param="messages"
        )
        cost_nano_usd = await billing.charge(model, result.usage, attempts=attempts, outcome="completed")
        headers = routing_headers(
            model=model,
            strategy=plan.strategy,
            attempts=attempts,
            quote_nano_usd=plan.hold_nano_usd,
            cost_nano_usd=cost_nano_usd,
        )
        settled = self._upto_settled(call, plan, billing)
        return Served(result=result, model=model, headers={**payment_headers, **settled, **headers})

    async def _chat_stream(
        self,
        call: PaidCall,
        body: ChatCompletionRequest,
        plan: ServePlan,
        *,
        renderer: StreamRenderer | None,
    ) -> web.StreamResponse:
        assert body.stream
        return await self._stream(
            call,
            body,
            plan,
            open_stream=lambda: self._dispatcher.open_stream(body, plan),
            renderer=renderer,
        )

    async def _stream(
        self,
        call: PaidCall,
        body: ChatCompletionRequest,
        plan: ServePlan,
        *,
        open_stream: Callable[[], Awaitable[OpenedStream]],
        renderer: StreamRenderer | None,
    ) -> web.StreamResponse:
        billing, payment_headers = await self._hold(call, plan, streamed=True)
        opened = await self._dispatched(billing, payment_headers, open_stream, param="messages")
        headers = {
            # Middlewares cannot add headers to a response that is already streaming: they are set here.
            "X-Request-Id": call.request_id,
            **call.stream_headers,
            **payment_headers,
            **routing_headers(
                model=opened.model,
                strategy=plan.strategy,
                attempts=opened.attempts,
                quote_nano_usd=plan.hold_nano_usd,
                cost_nano_usd=None,
            ),
        }
        return await relay_stream(
            call.request,
            body=body,
            opened=opened,
            billing=billing,
            dispatcher=self._dispatcher,
            headers=headers,
            bounds=self._stream_bounds(billing),
            renderer=renderer,
        )

    async def _embeddings(
        self, call: PaidCall, body: EmbeddingsRequest, plan: EmbeddingsPlan
    ) -> Served[EmbeddingsResult]:
        billing, payment_headers = await self._hold(call, plan, streamed=False)
        result, model, attempts = await self._dispatched(
            billing, payment_headers, lambda: self._dispatcher.embed(body, plan.candidates), param="input"
        )
        cost_nano_usd = await billing.charge(model, result.usage, attempts=attempts, outcome="completed")
        headers = routing_headers(
            model=model,
            strategy=None,
            attempts=attempts,
            quote_nano_usd=plan.hold_nano_usd,
            cost_nano_usd=cost_nano_usd,
        )
        settled = self._upto_settled(call, plan, billing)
        return Served(result=result, model=model, headers={**payment_headers, **settled, **headers})

    def _stream_bounds(self, billing: BillingSession) -> StreamBounds:
        """The relay ends by `stream_duration_s_max` from its first event, and within the time the settings
        budget for a stream's hold (failover until the first event included), whichever comes first."""
        settings = self._settings
        budget_s = settings.request_deadline_s + settings.upstream_timeout_s + settings.stream_duration_s_max
        return StreamBounds(
            duration_s=min(settings.stream_duration_s_max, budget_s - billing.held_s),
            write_timeout_s=settings.stream_write_timeout_s,
        )

    def _upto_settled(
        self, call: PaidCall, plan: ServePlan | EmbeddingsPlan, billing: BillingSession
    ) -> dict[str, str]:
        """PAYMENT-RESPONSE of an `upto` payment, settled after the capture (amount and transaction).

        A settlement that failed (the payer withdrew its allowance or balance, or spent the nonce, after
        verification) withholds the answer: a 402 with the reason code, the loss booked by the payments
        layer. A pending one (the chain is slow) answers: recovery finishes it, exactly once.
        """
        outcome = billing.upto_outcome
        if outcome is None:
            return {}
        if outcome.failed:
            refusal = self._gate.payment_required(
                call.request, plan.hold_nano_usd, reason=outcome.reason, upto=True
            )
            refusal.headers.update(outcome.headers)
            raise refusal
        return outcome.headers

    async def _hold(
        self, call: PaidCall, plan: ServePlan | EmbeddingsPlan, *, streamed: bool
    ) -> tuple[BillingSession, dict[str, str]]:
        signed_in_wallet = None
        if call.principal is None and call.sign_in_header is not None and self._sign_ins is not None:
            signed_in_wallet = await sign_in_wallet(
                call.request,
                sign_ins=self._sign_ins,
                gate=self._gate,
                header_value=call.sign_in_header,
                hold_nano_usd=plan.hold_nano_usd,
            )
        billing, payment_headers = await open_paid_session(
            call.request,
            gate=self._gate,
            billing=self._billing,
            principal=call.principal,
            hold_nano_usd=plan.hold_nano_usd,
            first_provider=plan.candidates[0].provider,
            strategy=plan.strategy if isinstance(plan, ServePlan) else None,
            streamed=streamed,
            route_explanation=plan.explanation if isinstance(plan, ServePlan) else None,
            request_id=call.request_id,
            signed_in_wallet=signed_in_wallet,
            tokens_max=_tokens_max(plan),
        )
        crash_if_enabled(self._settings.fault_injection, "after_inference_held")
        return billing, payment_headers

    async def _dispatched(
        self,
        billing: BillingSession,
        payment_headers: dict[str, str],
        dispatch: Callable[[], Awaitable[R]],
        *,
        param: str,
    ) -> R:
        """What `dispatch` returns; on any failure the hold is voided (with its usage event) first."""
        try:
            return await dispatch()
        except NoCandidateServed as failure:
            await billing.release(attempts=failure.attempts, outcome="upstream_failed")
            log.warning(
                "no_candidate_served", attempts=attempts_header(failure.attempts), code=failure.error.code
            )
            raise with_payment_outcome(failure.error, payment_headers) from None
        except UnsupportedRequest as error:
            # A candidate's adapter cannot translate what routing let through (a tool call whose arguments
            # are not JSON, for one): the caller's error, so the hold is released and nothing charged.
            await billing.release(attempts=[], outcome="caller_error")
            refusal = InvalidRequest(str(error), code="unsupported_request", param=param)
            raise with_payment_outcome(refusal, payment_headers) from error
        except BaseException:
            # Cancelled, or a bug: release the money before the error travels on.
            await billing.release(attempts=[], outcome="aborted")
            raise


def _tokens_max(plan: ServePlan | EmbeddingsPlan) -> int:
    """A chat request's token bound over its candidates (what its quote assumed); embeddings: 0 (their
    tokens are not bounded before the call, so tokens-per-minute limits count chat requests only)."""
    if isinstance(plan, EmbeddingsPlan):
        return 0
    return max(quote.prompt_tokens_max + quote.output_tokens_max for quote in plan.quotes.values())
