"""One usage event per request: the explanation of its charge (tokens by kind, prices, catalog version)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import RowMapping, Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy.db.tables import usage_events

__all__ = ["USAGE_EVENTS_LISTED_MAX", "Attempt", "UsageEvent", "UsageLog"]

USAGE_EVENTS_LISTED_MAX = 1_000


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
            exclude={"attempts", "prices_nano_usd_per_mtok", "streamed", "usage_estimated"}
        )
        row |= {
            "created_at": self._clock(),
            "attempts_json": json.dumps([attempt.model_dump() for attempt in event.attempts]),
            "prices_json": json.dumps(event.prices_nano_usd_per_mtok, sort_keys=True),
            "streamed": int(event.streamed),
            "usage_estimated": int(event.usage_estimated),
        }
        await connection.execute(insert(usage_events).values(**row))

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


def _event(row: RowMapping) -> UsageEvent:
    decoded = {"attempts", "prices_nano_usd_per_mtok", "streamed", "usage_estimated"}
    return UsageEvent(
        **{key: row[key] for key in UsageEvent.model_fields if key not in decoded},
        attempts=tuple(Attempt(**item) for item in json.loads(row["attempts_json"])),
        prices_nano_usd_per_mtok=json.loads(row["prices_json"]),
        streamed=bool(row["streamed"]),
        usage_estimated=bool(row["usage_estimated"]),
    )
