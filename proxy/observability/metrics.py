"""Prometheus metrics of the router, in one registry owned by the app.

Counters and histograms are fed by the pipeline's observers (proxy/serving/observers.py): one call per
committed usage event, one per finished upstream attempt. State that lives elsewhere (breakers in the
health tracker, open holds in the ledger, settlement intents in flight) is read at scrape time by
`refresh()` and exposed by a custom collector, never pushed.

Labels come from finite sets only (catalog ids, provider names, strategies, fixed outcome names): no
request, key or wallet ever becomes a label. Names follow the OpenTelemetry GenAI semantic conventions
where one exists (`gen_ai_*`), else `megarouter_*`.

Money: `megarouter_spend_nano_usd_total` is incremented by integers, but Prometheus holds every value as
a float64, so a series stays exact up to 2**53 nano-USD (about 9 million USD); the ledger is the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.tables import ledger_metadata
from proxy.catalog import CatalogModel
from proxy.db.tables import x402_settlements
from proxy.payments.intents import UNFINISHED_STATUSES
from proxy.routing.health import HealthTracker
from proxy.serving.usage_log import Attempt, UsageEvent

__all__ = ["BREAKER_STATE_VALUES", "METRICS_CONTENT_TYPE", "RouterMetrics", "StateSnapshot"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
# Label value for what a request never had (a model when no candidate served; a strategy for embeddings).
NONE_LABEL = "none"
# The scrape-time reads (tracker, two indexed aggregates) must answer within this, or the scrape fails.
SCRAPE_READ_TIMEOUT_S = 5.0
# OpenTelemetry GenAI semantic conventions' advised bucket boundaries.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
MS_PER_S = 1000


@dataclass(frozen=True)
class StateSnapshot:
    """What the last scrape read: breaker state per deployment, open holds, unfinished settlements."""

    breakers: dict[str, str] = field(default_factory=dict)
    open_holds: int = 0
    open_holds_nano_usd: int = 0
    settlement_intents: dict[str, int] = field(default_factory=dict)


class _StateCollector(Collector):
    def __init__(self, deployments: Sequence[CatalogModel]) -> None:
        self._providers = {model.id: model.provider for model in deployments}
        self.snapshot = StateSnapshot()

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        breakers = GaugeMetricFamily(
            "megarouter_deployment_breaker_state",
            "Circuit breaker of a deployment: 0 closed, 1 half-open, 2 open",
            labels=["deployment", "provider"],
        )
        for deployment_id, state in sorted(snapshot.breakers.items()):
            breakers.add_metric([deployment_id, self._providers[deployment_id]], BREAKER_STATE_VALUES[state])
        yield breakers
        yield GaugeMetricFamily(
            "megarouter_open_holds",
            "Ledger holds pending (requests and withdrawals in flight)",
            value=snapshot.open_holds,
        )
        yield GaugeMetricFamily(
            "megarouter_open_holds_nano_usd",
            "Nano-USD held by pending ledger holds",
            value=snapshot.open_holds_nano_usd,
        )
        intents = GaugeMetricFamily(
            "megarouter_settlement_intents",
            "x402 settlement intents not finished yet, by state",
            labels=["state"],
        )
        for state, count in sorted(snapshot.settlement_intents.items()):
            intents.add_metric([state], count)
        yield intents


def _operation(event: UsageEvent) -> str:
    # Chat requests are always routed under a strategy; embeddings never are.
    return "chat" if event.strategy is not None else "embeddings"


def _failovers(attempts: Sequence[Attempt]) -> Iterable[Attempt]:
    """The attempts that passed the request on to a next candidate: every failure but the last attempt."""
    return (attempt for attempt in attempts[:-1] if attempt.outcome != "ok")


class RouterMetrics:
    """The app's metrics: observers for the pipeline, `refresh()` then `render()` per scrape."""

    def __init__(
        self,
        *,
        deployments: Sequence[CatalogModel],
        tracker: HealthTracker,
        engine: AsyncEngine,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._deployment_ids = tuple(model.id for model in deployments)
        self._tracker = tracker
        self._engine = engine
        self._state = _StateCollector(deployments)
        self.registry.register(self._state)
        request_labels = ["model", "provider", "strategy", "outcome"]
        gen_ai_labels = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_response_model"]
        self._requests = Counter(
            "megarouter_requests",
            "Paid requests by served model, provider, strategy and outcome",
            request_labels,
            registry=self.registry,
        )
        self._duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Request duration from the hold to the charge (a stream: to its end)",
            [*gen_ai_labels, "outcome"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Streamed requests: time to the first token",
            gen_ai_labels,
            buckets=TTFT_BUCKETS_S,
            registry=self.registry,
        )
        self._tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per request by kind (gen_ai_token_type)",
            [*gen_ai_labels, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self._spend = Counter(
            "megarouter_spend_nano_usd",
            "Nano-USD charged to callers (integer increments)",
            ["model", "provider"],
            registry=self.registry,
        )
        self._overage = Counter(
            "megarouter_usage_overage_nano_usd",
            "Nano-USD a provider's reported usage cost beyond the quote (the operator's expense)",
            ["provider"],
            registry=self.registry,
        )
        self._attempts = Histogram(
            "megarouter_upstream_attempt_duration_seconds",
            "Upstream attempts by deployment and outcome (ok or a failure kind); streams: to the first event",
            ["deployment", "provider", "outcome"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self._failover_count = Counter(
            "megarouter_failovers",
            "Requests passed on from a deployment to the next candidate, by reason",
            ["deployment", "reason"],
            registry=self.registry,
        )

    def usage_recorded(self, event: UsageEvent) -> None:
        """Observer of committed usage events (Billing's observers)."""
        model = event.model_id or NONE_LABEL
        provider = event.provider or NONE_LABEL
        self._requests.labels(model, provider, event.strategy or NONE_LABEL, event.outcome).inc()
        gen_ai = (_operation(event), provider, model)
        self._duration.labels(*gen_ai, event.outcome).observe(event.latency_ms / MS_PER_S)
        if event.time_to_first_token_ms is not None:
            self._ttft.labels(*gen_ai).observe(event.time_to_first_token_ms / MS_PER_S)
        if event.model_id is not None:
            self._observe_tokens(event, gen_ai)
            assert event.cost_nano_usd >= 0
            self._spend.labels(model, provider).inc(event.cost_nano_usd)
        if event.overage_nano_usd > 0:
            self._overage.labels(provider).inc(event.overage_nano_usd)
        for attempt in _failovers(event.attempts):
            self._failover_count.labels(attempt.model_id, attempt.outcome).inc()

    def _observe_tokens(self, event: UsageEvent, gen_ai: tuple[str, str, str]) -> None:
        counts = {
            "input": event.input_tokens,
            "output": event.output_tokens,
            "cached_input": event.cached_input_tokens,
            "cache_write_input": event.cache_write_input_tokens,
            "reasoning": event.reasoning_tokens,
        }
        for kind, tokens in counts.items():
            # Input and output are always recorded (as the conventions ask); the other kinds when present.
            if tokens > 0 or kind in ("input", "output"):
                self._tokens.labels(*gen_ai, kind).observe(tokens)

    def attempt_finished(self, attempt: Attempt) -> None:
        """Observer of upstream attempts (the Dispatcher's attempt observers)."""
        self._attempts.labels(attempt.model_id, attempt.provider, attempt.outcome).observe(
            attempt.latency_ms / MS_PER_S
        )

    async def refresh(self) -> None:
        """Reads the state gauges for this scrape: one tracker read and two indexed aggregates, bounded."""
        async with asyncio.timeout(SCRAPE_READ_TIMEOUT_S):
            health = await self._tracker.snapshots(self._deployment_ids)
            holds = ledger_metadata.tables["ledger_holds"]
            open_holds = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(holds.c.amount), 0)).where(
                holds.c.state == "pending"
            )
            unfinished = [status.value for status in UNFINISHED_STATUSES]
            intents = (
                sa.select(x402_settlements.c.status, sa.func.count())
                .where(x402_settlements.c.status.in_(unfinished))
                .group_by(x402_settlements.c.status)
            )
            async with self._engine.connect() as connection:
                hold_count, held_nano_usd = (await connection.execute(open_holds)).one()
                rows = await connection.execute(intents)
                intent_counts = {str(status): int(count) for status, count in rows}
        self._state.snapshot = StateSnapshot(
            breakers={deployment_id: view.breaker for deployment_id, view in health.items()},
            open_holds=int(hold_count),
            open_holds_nano_usd=int(held_nano_usd),
            settlement_intents={status: intent_counts.get(status, 0) for status in unfinished},
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
