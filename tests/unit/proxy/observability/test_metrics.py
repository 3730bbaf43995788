"""RouterMetrics: what one usage event and one upstream attempt record, and the scrape-time collector of
breaker states, open holds and settlement intents (read from a snapshot, rendered in the text format)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from ledger import migrate
from proxy.catalog import load_catalog
from proxy.db.migrate import migrate_proxy
from proxy.observability.metrics import RouterMetrics, StateSnapshot
from proxy.routing.health import InMemoryHealthTracker
from proxy.serving.usage_log import Attempt, UsageEvent
from tests.fixtures.clock import FakeClock

SERVED = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"


def _metrics() -> RouterMetrics:
    catalog = load_catalog()
    deployments = [model for model in catalog if model.provider in ("groq", "together")]
    # The engine is never connected to here: only refresh() reads it.
    return RouterMetrics(
        deployments=deployments,
        tracker=InMemoryHealthTracker(clock=FakeClock()),
        engine=create_async_engine("sqlite+aiosqlite://"),
    )


def _event(**overrides: object) -> UsageEvent:
    fields: dict[str, object] = {
        "request_id": "req_1",
        "payer_account": "liability:credit:0xabc",
        "api_key_id": 7,
        "outcome": "completed",
        "model_id": SERVED,
        "provider": "together",
        "strategy": "balanced",
        "attempts": (
            Attempt(
                model_id="groq/llama-3.3-70b-versatile",
                provider="groq",
                outcome="rate_limited",
                status=429,
                latency_ms=40,
            ),
            Attempt(model_id=SERVED, provider="together", outcome="ok", latency_ms=900),
        ),
        "streamed": True,
        "input_tokens": 120,
        "cached_input_tokens": 20,
        "cache_write_input_tokens": 0,
        "output_tokens": 16,
        "reasoning_tokens": 0,
        "usage_estimated": False,
        "prices_nano_usd_per_mtok": {},
        "catalog_version": "v",
        "quote_nano_usd": 50_000,
        "cost_nano_usd": 12_345,
        "hold_id": 3,
        "latency_ms": 1_500,
        "time_to_first_token_ms": 250,
    }
    fields.update(overrides)
    return UsageEvent.model_validate(fields)


def test_a_usage_event_records_request_tokens_spend_duration_ttft_and_failover() -> None:
    metrics = _metrics()
    metrics.usage_recorded(_event())
    metrics.usage_recorded(_event(request_id="req_2", cost_nano_usd=1))
    value = metrics.registry.get_sample_value
    served = {"model": SERVED, "provider": "together"}
    gen_ai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "together",
        "gen_ai_response_model": SERVED,
    }
    assert value("megarouter_requests_total", {**served, "strategy": "balanced", "outcome": "completed"}) == 2
    assert value("megarouter_spend_nano_usd_total", served) == 12_346
    assert value("gen_ai_client_token_usage_sum", {**gen_ai, "gen_ai_token_type": "input"}) == 240
    assert value("gen_ai_client_token_usage_sum", {**gen_ai, "gen_ai_token_type": "output"}) == 32
    assert value("gen_ai_client_token_usage_sum", {**gen_ai, "gen_ai_token_type": "cached_input"}) == 40
    # Kinds a request did not use are not observed (beyond input and output).
    assert value("gen_ai_client_token_usage_count", {**gen_ai, "gen_ai_token_type": "reasoning"}) is None
    assert value("gen_ai_client_operation_duration_seconds_sum", {**gen_ai, "outcome": "completed"}) == 3.0
    assert value("gen_ai_server_time_to_first_token_seconds_sum", gen_ai) == 0.5
    failover = {"deployment": "groq/llama-3.3-70b-versatile", "reason": "rate_limited"}
    assert value("megarouter_failovers_total", failover) == 2


def test_a_request_no_candidate_served_counts_with_none_labels_and_no_spend() -> None:
    metrics = _metrics()
    failed = Attempt(model_id=SERVED, provider="together", outcome="server_error", status=500, latency_ms=5)
    metrics.usage_recorded(
        _event(
            outcome="upstream_failed",
            model_id=None,
            provider=None,
            attempts=(failed,),
            cost_nano_usd=0,
            time_to_first_token_ms=None,
        )
    )
    value = metrics.registry.get_sample_value
    labels = {"model": "none", "provider": "none", "strategy": "balanced", "outcome": "upstream_failed"}
    assert value("megarouter_requests_total", labels) == 1
    assert value("megarouter_spend_nano_usd_total", {"model": "none", "provider": "none"}) is None
    # The last attempt passed nothing on: no failover.
    assert value("megarouter_failovers_total", {"deployment": SERVED, "reason": "server_error"}) is None


def test_embeddings_are_labelled_by_their_operation() -> None:
    metrics = _metrics()
    metrics.usage_recorded(_event(strategy=None, streamed=False, time_to_first_token_ms=None, attempts=()))
    labels = {
        "gen_ai_operation_name": "embeddings",
        "gen_ai_provider_name": "together",
        "gen_ai_response_model": SERVED,
        "outcome": "completed",
    }
    assert metrics.registry.get_sample_value("gen_ai_client_operation_duration_seconds_count", labels) == 1


def test_an_attempt_records_its_latency_by_deployment_and_outcome() -> None:
    metrics = _metrics()
    metrics.attempt_finished(
        Attempt(model_id=SERVED, provider="together", outcome="timeout", latency_ms=2_500)
    )
    labels = {"deployment": SERVED, "provider": "together", "outcome": "timeout"}
    value = metrics.registry.get_sample_value
    assert value("megarouter_upstream_attempt_duration_seconds_sum", labels) == 2.5
    assert value("megarouter_upstream_attempt_duration_seconds_bucket", {**labels, "le": "2.56"}) == 1


def test_the_state_collector_renders_breakers_holds_and_intents_from_the_snapshot() -> None:
    metrics = _metrics()
    metrics._state.snapshot = StateSnapshot(
        breakers={SERVED: "open", "groq/llama-3.3-70b-versatile": "half_open"},
        open_holds=3,
        open_holds_nano_usd=9_007_199_254_740_993,  # Above 2**53: shown to be where float64 stops exact.
        settlement_intents={"claimed": 1, "signed": 0, "mined": 0},
    )
    families = {family.name: family for family in text_string_to_metric_families(metrics.render().decode())}
    breakers = {
        sample.labels["deployment"]: (sample.labels["provider"], sample.value)
        for sample in families["megarouter_deployment_breaker_state"].samples
    }
    assert breakers == {SERVED: ("together", 2.0), "groq/llama-3.3-70b-versatile": ("groq", 1.0)}
    assert families["megarouter_open_holds"].samples[0].value == 3
    assert families["megarouter_open_holds_nano_usd"].samples[0].value == float(2**53)
    intents = {
        sample.labels["state"]: sample.value for sample in families["megarouter_settlement_intents"].samples
    }
    assert intents == {"claimed": 1, "signed": 0, "mined": 0}


async def test_refresh_reads_breaker_states_from_the_tracker() -> None:
    clock = FakeClock()
    tracker = InMemoryHealthTracker(clock=clock)
    catalog = load_catalog()
    deployments = [catalog.get(SERVED)]
    for _ in range(tracker.policy.failures_to_open):
        await tracker.record_failure(SERVED, kind="server_error", retry_after_s=None)
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        await migrate(engine)
        await migrate_proxy(engine)
        metrics = RouterMetrics(deployments=deployments, tracker=tracker, engine=engine)
        await metrics.refresh()
        value = metrics.registry.get_sample_value
        assert (
            value("megarouter_deployment_breaker_state", {"deployment": SERVED, "provider": "together"}) == 2
        )
        assert value("megarouter_open_holds") == 0
        assert value("megarouter_settlement_intents", {"state": "mined"}) == 0
        clock.advance(tracker.policy.open_base_s)
        await metrics.refresh()
        assert (
            value("megarouter_deployment_breaker_state", {"deployment": SERVED, "provider": "together"}) == 1
        )
    finally:
        await engine.dispose()
