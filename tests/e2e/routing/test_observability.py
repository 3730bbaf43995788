"""Metrics and traces of real requests: a keyed chat request and a failed-over one through the running
router, then GET /metrics parsed with Prometheus' own parser; and the span tree of an x402-paid request
that fails over, exported to the SDK's in-memory exporter.

`fault_router` puts Groq's Llama 3.3 70B on the "primary" simulator (where faults go) and Together's on
the "secondary"; a 429 with Retry-After from the primary opens Groq's breaker at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from proxy.devnet.simulator import ANY_MODEL
from tests.e2e.api.support import funded_key, openai_client, usage_event
from tests.e2e.payments import encode_b64_json, sign_v2_payment
from tests.e2e.routing.conftest import FAULTY_MODEL
from tests.fixtures.app import RunningRouter

SECONDARY_MODEL = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something short."}]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _chat(router: RunningRouter, key: str) -> str:
    """One keyed chat completion with the official client; returns its request id."""
    async with openai_client(router, key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=FAULTY_MODEL, messages=MESSAGES, max_tokens=16
        )
    raw.parse()
    return raw.headers["X-Request-Id"]


async def _scrape(router: RunningRouter, headers: dict[str, str] | None = None) -> Samples:
    response = await router.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_show_requests_tokens_spend_failover_and_breaker(fault_router: RunningRouter) -> None:
    router = fault_router
    key = await funded_key(router, router.payers[3], amount_usd="1")
    served_first = await usage_event(router, await _chat(router, key))
    router.simulator["primary"].set_fault(ANY_MODEL, error_rate=1.0, error_status=429, retry_after_s=30)
    failed_over = await usage_event(router, await _chat(router, key))
    assert served_first.model_id == FAULTY_MODEL
    assert failed_over.model_id == SECONDARY_MODEL
    assert [attempt.outcome for attempt in failed_over.attempts] == ["rate_limited", "ok"]

    samples = await _scrape(router)
    for event in (served_first, failed_over):
        assert event.provider is not None
        assert event.model_id is not None
        served = {"model": event.model_id, "provider": event.provider}
        request = {**served, "strategy": "balanced", "outcome": "completed"}
        assert _sample(samples, "megarouter_requests_total", **request) == 1
        # Spend is the usage event's cost, exactly (integer increments, far below 2**53).
        spend = _sample(samples, "megarouter_spend_nano_usd_total", **served)
        assert spend == event.cost_nano_usd
        assert event.cost_nano_usd > 0
        gen_ai = {
            "gen_ai_operation_name": "chat",
            "gen_ai_provider_name": event.provider,
            "gen_ai_response_model": event.model_id,
        }
        tokens = {"input": event.input_tokens, "output": event.output_tokens}
        for kind, count in tokens.items():
            assert (
                _sample(samples, "gen_ai_client_token_usage_sum", **gen_ai, gen_ai_token_type=kind) == count
            )
        duration = "gen_ai_client_operation_duration_seconds_count"
        assert _sample(samples, duration, **gen_ai, outcome="completed") == 1
    assert _sample(samples, "megarouter_failovers_total", deployment=FAULTY_MODEL, reason="rate_limited") == 1
    attempts = "megarouter_upstream_attempt_duration_seconds_count"
    assert _sample(samples, attempts, deployment=FAULTY_MODEL, provider="groq", outcome="ok") == 1
    assert _sample(samples, attempts, deployment=FAULTY_MODEL, provider="groq", outcome="rate_limited") == 1
    assert _sample(samples, attempts, deployment=SECONDARY_MODEL, provider="together", outcome="ok") == 1
    breaker = "megarouter_deployment_breaker_state"
    assert _sample(samples, breaker, deployment=FAULTY_MODEL, provider="groq") == 2  # Open.
    assert _sample(samples, breaker, deployment=SECONDARY_MODEL, provider="together") == 0
    # Both holds captured; the top-up's settlement finished.
    assert _sample(samples, "megarouter_open_holds") == 0
    assert _sample(samples, "megarouter_open_holds_nano_usd") == 0
    for state in ("claimed", "signed", "mined"):
        assert _sample(samples, "megarouter_settlement_intents", state=state) == 0


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_paid_failed_over_request_is_one_span_tree(
    traced_fault_router: RunningRouter, span_exporter: InMemorySpanExporter
) -> None:
    router = traced_fault_router
    router.simulator["primary"].set_fault(ANY_MODEL, error_rate=1.0, error_status=500)
    body = {"model": FAULTY_MODEL, "messages": MESSAGES, "max_tokens": 16}
    offer_response = await router.client.post("/v1/chat/completions", json=body)
    assert offer_response.status == 402
    header = encode_b64_json(sign_v2_payment(router.payers[4], await offer_response.json()))
    response = await router.client.post(
        "/v1/chat/completions", json=body, headers={"PAYMENT-SIGNATURE": header}
    )
    assert response.status == 200, await response.text()
    event = await usage_event(router, response.headers["X-Request-Id"])

    spans = _by_name(span_exporter.get_finished_spans())
    requests = spans[f"chat {FAULTY_MODEL}"]
    # The unpaid offer and the paid request: one span each; the paid one carries the usage.
    paid = [span for span in requests if span.attributes and "gen_ai.usage.input_tokens" in span.attributes]
    assert len(requests) == 2
    assert len(paid) == 1
    root = paid[0]
    assert root.parent is None
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.request.model"] == FAULTY_MODEL
    assert root.attributes["gen_ai.request.max_tokens"] == 16
    assert root.attributes["gen_ai.response.model"] == SECONDARY_MODEL
    assert root.attributes["gen_ai.provider.name"] == "together"
    assert root.attributes["gen_ai.usage.input_tokens"] == event.input_tokens
    assert root.attributes["gen_ai.usage.output_tokens"] == event.output_tokens
    assert root.attributes["megarouter.cost_nano_usd"] == event.cost_nano_usd
    children = {
        span.name: span
        for span in span_exporter.get_finished_spans()
        if span.parent is not None and span.parent.span_id == root.context.span_id
    }
    assert set(children) == {"x402 settle", f"upstream {FAULTY_MODEL}", f"upstream {SECONDARY_MODEL}"}
    settle = children["x402 settle"]
    assert settle.attributes is not None
    assert str(settle.attributes["x402.transaction"]).startswith("0x")
    failed = children[f"upstream {FAULTY_MODEL}"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "server_error"
    served = children[f"upstream {SECONDARY_MODEL}"]
    assert served.attributes is not None
    assert served.attributes["megarouter.attempt.outcome"] == "ok"
    assert served.attributes["megarouter.attempt"] == 2
    # Every span of the paid request belongs to one trace.
    assert {span.context.trace_id for span in children.values()} == {root.context.trace_id}
