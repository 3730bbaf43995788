"""Where the spend-anomaly detector reads hourly spend: the `HourlySpendSource` protocol, and its
implementation over raw usage events (`UsageEventsHourlySpend`), the reference that the roll-up source the
app uses (`UsageRollupsHourlySpend`, spend_rollups.py) is tested against.

Every query reads one bounded, indexed time range: one hour of everyone (ix_usage_events_created) for the
top spenders, and the trailing hours of one subject (ix_usage_events_key_created,
ix_usage_events_payer_created) for its baseline, summed per hour in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy.db.tables import usage_events

__all__ = [
    "HOUR_S",
    "HourlySpendSource",
    "SpendSubject",
    "SubjectSpend",
    "UsageEventsHourlySpend",
    "top_spenders_of",
]

HOUR_S = 3_600
# Subjects are API keys (by id) and payer credit accounts (`credit:wallet:0x…`, later `credit:org:…`).
SubjectKind = Literal["key", "payer"]


class SpendSubject(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: SubjectKind
    id: str = Field(min_length=1, max_length=255)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.id}"


class SubjectSpend(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: SpendSubject
    spend_nano_usd: int = Field(ge=0)


class HourlySpendSource(Protocol):
    async def top_spenders(self, *, hour_start_unix_s: int, limit: int) -> list[SubjectSpend]:
        """Keys and payers spending in the hour from `hour_start_unix_s`, biggest first, `limit` per kind."""

    async def hourly_spend(self, subject: SpendSubject, *, first_hour_unix_s: int, hours: int) -> list[int]:
        """The subject's spend in each of `hours` consecutive hours from `first_hour_unix_s`, oldest first."""


def _at(unix_s: int) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


async def top_spenders_of(
    connection: AsyncConnection,
    *,
    cost: sa.ColumnElement[Any],
    in_hour: sa.ColumnElement[bool],
    subjects: Sequence[tuple[SubjectKind, sa.ColumnElement[Any], sa.ColumnElement[bool]]],
    limit: int,
) -> list[SubjectSpend]:
    """For each (kind, column, present) subject: its `limit` biggest spenders among the rows `in_hour`
    where it is `present`, summing `cost`; biggest first, ties by id."""
    spend = sa.func.sum(cost).label("spend")
    found: list[SubjectSpend] = []
    for kind, column, present in subjects:
        statement = (
            sa.select(column, spend)
            .where(in_hour, present)
            .group_by(column)
            .having(sa.func.sum(cost) > 0)
            .order_by(spend.desc(), column)
            .limit(limit)
        )
        for subject_id, total in (await connection.execute(statement)).all():
            subject = SpendSubject(kind=kind, id=str(subject_id))
            found.append(SubjectSpend(subject=subject, spend_nano_usd=int(total)))
    return found


class UsageEventsHourlySpend:
    """`HourlySpendSource` over `usage_events` (charged cost per request)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def top_spenders(self, *, hour_start_unix_s: int, limit: int) -> list[SubjectSpend]:
        assert hour_start_unix_s % HOUR_S == 0
        assert limit >= 1
        events = usage_events.c
        in_hour = sa.and_(
            events.created_at >= _at(hour_start_unix_s), events.created_at < _at(hour_start_unix_s + HOUR_S)
        )
        async with self._engine.connect() as connection:
            return await top_spenders_of(
                connection,
                cost=events.cost_nano_usd,
                in_hour=in_hour,
                subjects=(
                    ("key", events.api_key_id, events.api_key_id.is_not(None)),
                    ("payer", events.payer_account, events.payer_account.is_not(None)),
                ),
                limit=limit,
            )

    async def hourly_spend(self, subject: SpendSubject, *, first_hour_unix_s: int, hours: int) -> list[int]:
        assert first_hour_unix_s % HOUR_S == 0
        assert 1 <= hours <= 24 * 31
        events = usage_events.c
        matches = (
            events.api_key_id == int(subject.id)
            if subject.kind == "key"
            else events.payer_account == subject.id
        )
        # One column per hour, summed over one indexed range: no per-dialect date functions.
        sums = [
            sa.func.coalesce(
                sa.func.sum(
                    sa.case(
                        (
                            sa.and_(
                                events.created_at >= _at(first_hour_unix_s + i * HOUR_S),
                                events.created_at < _at(first_hour_unix_s + (i + 1) * HOUR_S),
                            ),
                            events.cost_nano_usd,
                        ),
                        else_=0,
                    )
                ),
                0,
            )
            for i in range(hours)
        ]
        statement = sa.select(*sums).where(
            matches,
            events.created_at >= _at(first_hour_unix_s),
            events.created_at < _at(first_hour_unix_s + hours * HOUR_S),
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(statement)).one()
        return [int(value) for value in row]
