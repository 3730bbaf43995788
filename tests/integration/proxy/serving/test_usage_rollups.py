"""Usage roll-ups under concurrency and across hours: many usage events written at once (each in its own
transaction, as concurrent requests do) land in their hour's row exactly once each.

Method: UsageLog with an injected clock records events concurrently on SQLite and PostgreSQL, spread over
two hours, several dimensions and outcomes, some with a time to first token; the roll-ups then equal the
oracle's aggregate of the raw events (tests/fixtures/rollups.py), and the analytics query sums them. The
spend-anomaly detector's roll-up source answers as its raw-event reference does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import migrate
from proxy.db.migrate import migrate_proxy
from proxy.observability.alerts import (
    SpendSubject,
    UsageEventsHourlySpend,
    UsageRollupsHourlySpend,
)
from proxy.serving.analytics import AnalyticsQuery, AnalyticsScope, run_analytics
from proxy.serving.usage_log import UsageEvent, UsageLog
from tests.fixtures.rollups import expected_rollups, raw_usage_events, stored_rollups

HOUR_START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EVENTS = 48


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    await migrate(engine)
    await migrate_proxy(engine)
    yield engine
    await engine.dispose()


def _event(index: int) -> UsageEvent:
    completed = index % 5 != 0
    return UsageEvent(
        request_id=f"req_{index:032x}",
        payer_account=f"credit:wallet:0x{index % 2 + 1:040x}",
        api_key_id=index % 3 or None,
        outcome="completed" if completed else "upstream_failed",
        model_id=("openai/gpt-4o-mini", "openai/gpt-4.1-nano")[index % 2] if completed else None,
        provider="openai" if completed else None,
        strategy="balanced",
        attempts=(),
        streamed=index % 4 == 0,
        input_tokens=10 + index,
        cached_input_tokens=index % 3,
        cache_write_input_tokens=0,
        output_tokens=(20 + index) if completed else 0,
        reasoning_tokens=index % 2,
        usage_estimated=False,
        prices_nano_usd_per_mtok={},
        catalog_version="test",
        quote_nano_usd=100_000,
        cost_nano_usd=(1_000 + index) if completed else 0,
        hold_id=index + 1,
        latency_ms=index * 37 % 5_000,
        time_to_first_token_ms=(index * 11) if index % 4 == 0 and completed else None,
    )


async def test_concurrent_events_roll_up_exactly_once(engine: AsyncEngine) -> None:
    # Each event's time comes from the clock; events cross from one hour into the next.
    times = itertools.count()

    def clock() -> datetime:
        return HOUR_START + timedelta(minutes=50) + timedelta(seconds=30 * next(times))

    usage_log = UsageLog(engine, clock=clock)
    await asyncio.gather(*(usage_log.record(_event(index)) for index in range(EVENTS)))

    events = await raw_usage_events(engine)
    assert len(events) == EVENTS
    expected = expected_rollups(events)
    assert len({dims[1] for dims in expected if dims[0] == 3_600}) == 2  # Two hours, one day.
    assert len({dims[1] for dims in expected if dims[0] == 86_400}) == 1
    assert await stored_rollups(engine) == expected

    start_s = int(HOUR_START.timestamp())
    query = AnalyticsQuery(start_unix_s=start_s, end_unix_s=start_s + 7_200, group_by=("key",))
    report = await run_analytics(engine, query, AnalyticsScope(everything=True))
    assert sum(row["requests"] for row in report["data"]) == EVENTS
    assert sum(row["errors"] for row in report["data"]) == sum(e["outcome"] != "completed" for e in events)
    assert sum(row["spend_nano_usd"] for row in report["data"]) == sum(e["cost_nano_usd"] for e in events)
    assert {row["bucket_start"] for row in report["data"]} == {start_s, start_s + 3_600}
    assert {row["group"]["key"] for row in report["data"]} == {None, 1, 2}
    by_day = await run_analytics(
        engine, query.model_copy(update={"bucket": "day"}), AnalyticsScope(everything=True)
    )
    assert {row["bucket_start"] for row in by_day["data"]} == {start_s - start_s % 86_400}
    assert sum(row["requests"] for row in by_day["data"]) == EVENTS
    assert sum(row["spend_nano_usd"] for row in by_day["data"]) == sum(e["cost_nano_usd"] for e in events)
    # A scope that matches no row sees nothing.
    nobody = AnalyticsScope(payer_accounts=frozenset({"credit:wallet:0x" + "f" * 40}))
    assert (await run_analytics(engine, query, nobody))["data"] == []


async def test_the_spend_anomaly_source_over_roll_ups_answers_as_the_raw_events_do(
    engine: AsyncEngine,
) -> None:
    """The detector reads hourly spend from the roll-ups; the raw-event source is the reference."""
    times = itertools.count()

    def clock() -> datetime:  # Events 13 minutes apart: about four hours, some hours spanning two keys.
        return HOUR_START + timedelta(minutes=13 * next(times))

    usage_log = UsageLog(engine, clock=clock)
    for index in range(EVENTS):
        await usage_log.record(_event(index))
    start_s = int(HOUR_START.timestamp())
    raw, rolled = UsageEventsHourlySpend(engine), UsageRollupsHourlySpend(engine)
    subjects = set()
    for hour in range(-1, 12):
        hour_start_s = start_s + hour * 3_600
        expected = await raw.top_spenders(hour_start_unix_s=hour_start_s, limit=10)
        assert await rolled.top_spenders(hour_start_unix_s=hour_start_s, limit=10) == expected
        subjects |= {spender.subject for spender in expected}
    assert {subject.kind for subject in subjects} == {"key", "payer"}
    assert SpendSubject(kind="key", id="0") not in subjects  # Roll-ups' "no key" is nobody.
    for subject in subjects:
        expected_hours = await raw.hourly_spend(subject, first_hour_unix_s=start_s - 3_600, hours=14)
        assert sum(expected_hours) > 0
        assert (
            await rolled.hourly_spend(subject, first_hour_unix_s=start_s - 3_600, hours=14) == expected_hours
        )
