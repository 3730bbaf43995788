"""One usage event per request: the explanation of its charge (tokens by kind, prices, catalog version)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import RowMapping, Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.driver_sql import DriverStatement
from proxy.db.tables import usage_events
from proxy.serving.usage_rollups import RollupDimensions, upsert_usage_rollup

__all__ = ["USAGE_EVENTS_LISTED_MAX", "Attempt", "UsageEvent", "UsageLog", "rollup_dimensions"]

USAGE_EVENTS_LISTED_MAX = 1_000
# UsageEvent fields stored in a column of another name or type (JSON text, 0/1 integers).
_ENCODED_FIELDS = frozenset(
    {"attempts", "prices_nano_usd_per_mtok", "streamed", "usage_estimated", "route_explanation"}
)
_INSERT_USAGE_EVENT = DriverStatement(insert(usage_events))


class Attempt(BaseModel):
    """One upstream attempt of a request: which deployment, and how it ended."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    provider: str
    outcome: str  # "ok", or the UpstreamError kind that ended it.
    status: int | None = None
    latency_ms: int


class UsageEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    payer_account: str
    api_key_id: int | None
    # completed | upstream_failed | stream_cut | client_disconnected | client_write_timeout |
    # stream_duration_exceeded | relay_failed | caller_error | aborted | instance_lost
    outcome: str
    model_id: str | None
    provider: str | None
    strategy: str | None
    attempts: tuple[Attempt, ...]
    streamed: bool
    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    usage_estimated: bool
    prices_nano_usd_per_mtok: dict[str, int]
    catalog_version: str
    quote_nano_usd: int
    cost_nano_usd: int  # What the caller was charged: the real cost, capped at the quote.
    # What the provider's reported usage cost beyond the quote: owed to the provider, booked as the
    # operator's expense (`expense:usage_overage:<provider>`), never charged to the caller.
    overage_nano_usd: int = 0
    hold_id: int | None
    latency_ms: int
    time_to_first_token_ms: int | None
    # How `auto` (or the named model's fallbacks) were chosen: the same object as POST /v1/route/preview
    # returns. None for embeddings and for events written before it existed.
    route_explanation: dict[str, Any] | None = None
    # Set when an org key made the request (proxy/governance), so spend can be grouped by any of them.
    org_id: int | None = None
    org_unit_id: int | None = None
    org_member_id: int | None = None
    org_key_id: int | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UsageLog:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    async def record(self, event: UsageEvent) -> None:
        """Inserts `event` in a transaction of its own (a record that explains no ledger write)."""
        async with self._engine.begin() as connection:
            await self.insert(connection, event)

    async def insert(self, connection: AsyncConnection, event: UsageEvent) -> None:
        """Inserts `event` on `connection`, inside its caller's transaction: with the capture or void it
        explains (`Ledger.capture(..., also=)`), so a charge never commits without its explanation."""
        assert event.cost_nano_usd <= event.quote_nano_usd
        assert event.overage_nano_usd >= 0
        assert event.overage_nano_usd == 0 or event.cost_nano_usd == event.quote_nano_usd
        row = event.model_dump(
            exclude={
                "attempts",
                "prices_nano_usd_per_mtok",
                "streamed",
                "usage_estimated",
                "route_explanation",
            }
        )
        created_at = self._clock()
        row |= {
            "created_at": created_at,
            "attempts_json": json.dumps([attempt.model_dump() for attempt in event.attempts]),
            "prices_json": json.dumps(event.prices_nano_usd_per_mtok, sort_keys=True),
            "streamed": int(event.streamed),
            "usage_estimated": int(event.usage_estimated),
            "route_explanation_json": None
            if event.route_explanation is None
            else json.dumps(event.route_explanation, sort_keys=True),
        }
        # A statement built once, its parameters given at execution: building it per request cost more.
        await _INSERT_USAGE_EVENT.execute(connection, row)
        # The same transaction keeps the hourly roll-up that analytics read (proxy/serving/usage_rollups.py).
        await upsert_usage_rollup(
            connection,
            rollup_dimensions(event),
            created_unix_s=int(created_at.timestamp()),
            outcome=event.outcome,
            tokens={
                "input_tokens": event.input_tokens,
                "cached_input_tokens": event.cached_input_tokens,
                "output_tokens": event.output_tokens,
                "reasoning_tokens": event.reasoning_tokens,
            },
            spend_nano_usd=event.cost_nano_usd,
            overage_nano_usd=event.overage_nano_usd,
            latency_ms=event.latency_ms,
            ttft_ms=event.time_to_first_token_ms,
        )

    async def for_request(self, request_id: str, *, payer_account: str | None = None) -> list[UsageEvent]:
        """One request's events; with `payer_account`, only that payer's (what a key may see)."""
        statement = (
            select(usage_events).where(usage_events.c.request_id == request_id).order_by(usage_events.c.id)
        )
        if payer_account is not None:
            statement = statement.where(usage_events.c.payer_account == payer_account)
        return await self._events(statement)

    async def recent(self, *, payer_account: str | None, limit: int) -> list[UsageEvent]:
        """The newest events, of one payer or of everyone."""
        assert 1 <= limit <= USAGE_EVENTS_LISTED_MAX
        statement = select(usage_events).order_by(usage_events.c.id.desc()).limit(limit)
        if payer_account is not None:
            statement = statement.where(usage_events.c.payer_account == payer_account)
        return await self._events(statement)

    async def _events(self, statement: Select[Any]) -> list[UsageEvent]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_event(row) for row in rows]


def rollup_dimensions(event: UsageEvent) -> RollupDimensions:
    """The roll-up row `event` counts in: an org key's request also under its org, unit and member (ids as
    text, '' where none), so the analytics API groups on them."""
    return RollupDimensions(
        model_id=event.model_id or "",
        provider=event.provider or "",
        strategy=event.strategy or "",
        api_key_id=event.api_key_id or 0,
        payer_account=event.payer_account,
        org_id=_dimension(event.org_id),
        unit_id=_dimension(event.org_unit_id),
        member_id=_dimension(event.org_member_id),
    )


def _dimension(value: int | None) -> str:
    return "" if value is None else str(value)


def _event(row: RowMapping) -> UsageEvent:
    explanation = row["route_explanation_json"]
    return UsageEvent(
        **{key: row[key] for key in UsageEvent.model_fields if key not in _ENCODED_FIELDS},
        attempts=tuple(Attempt(**item) for item in json.loads(row["attempts_json"])),
        prices_nano_usd_per_mtok=json.loads(row["prices_json"]),
        streamed=bool(row["streamed"]),
        usage_estimated=bool(row["usage_estimated"]),
        route_explanation=None if explanation is None else json.loads(explanation),
    )
