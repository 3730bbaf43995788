"""`HourlySpendSource` over the hourly usage roll-ups (`usage_rollups`, period_s = 3600), which the usage
event's own transaction keeps: the spend-anomaly detector reads a few rows per subject-hour instead of
every request's event.

A roll-up row is one combination of dimensions in one hour, so each query sums a subject's rows per hour.
Key 0 is the roll-ups' "no key" (a NULL api_key_id in usage_events) and is never a subject.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.tables import usage_rollups
from proxy.observability.alerts.spend_source import HOUR_S, SpendSubject, SubjectSpend, top_spenders_of

__all__ = ["UsageRollupsHourlySpend"]

_NO_KEY = 0


class UsageRollupsHourlySpend:
    """`HourlySpendSource` over `usage_rollups`: the same answers as `UsageEventsHourlySpend`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def top_spenders(self, *, hour_start_unix_s: int, limit: int) -> list[SubjectSpend]:
        assert hour_start_unix_s % HOUR_S == 0
        assert limit >= 1
        rollups = usage_rollups.c
        in_hour = sa.and_(rollups.period_s == HOUR_S, rollups.period_start_unix_s == hour_start_unix_s)
        async with self._engine.connect() as connection:
            return await top_spenders_of(
                connection,
                cost=rollups.spend_nano_usd,
                in_hour=in_hour,
                subjects=(
                    ("key", rollups.api_key_id, rollups.api_key_id != _NO_KEY),
                    ("payer", rollups.payer_account, rollups.payer_account != ""),
                ),
                limit=limit,
            )

    async def hourly_spend(self, subject: SpendSubject, *, first_hour_unix_s: int, hours: int) -> list[int]:
        assert first_hour_unix_s % HOUR_S == 0
        assert 1 <= hours <= 24 * 31
        rollups = usage_rollups.c
        matches = (
            rollups.api_key_id == int(subject.id)
            if subject.kind == "key"
            else rollups.payer_account == subject.id
        )
        statement = (
            sa.select(rollups.period_start_unix_s, sa.func.sum(rollups.spend_nano_usd))
            .where(
                matches,
                rollups.period_s == HOUR_S,
                rollups.period_start_unix_s >= first_hour_unix_s,
                rollups.period_start_unix_s < first_hour_unix_s + hours * HOUR_S,
            )
            .group_by(rollups.period_start_unix_s)
        )
        async with self._engine.connect() as connection:
            by_hour = {int(start): int(total) for start, total in (await connection.execute(statement)).all()}
        return [by_hour.get(first_hour_unix_s + i * HOUR_S, 0) for i in range(hours)]
