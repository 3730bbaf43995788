"""Budget periods: calendar day, ISO week (from Monday) and month in UTC, or the budget's whole life.

Pure: the caller passes the time. A period is named by its kind and start (`month-20261201`); the ledger's
budget accounts carry that name, so a new period is new accounts and the old ones keep their spend.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

__all__ = ["Period", "period_key", "period_start_unix_s", "previous_period_start_unix_s"]


class Period(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


def _day(now_unix_s: int) -> datetime:
    moment = datetime.fromtimestamp(now_unix_s, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def period_start_unix_s(period: Period, now_unix_s: int) -> int:
    """The UTC start of the period containing `now_unix_s` (0 for `total`)."""
    assert now_unix_s >= 0
    if period is Period.TOTAL:
        return 0
    day = _day(now_unix_s)
    if period is Period.WEEK:
        day -= timedelta(days=day.weekday())
    elif period is Period.MONTH:
        day = day.replace(day=1)
    start = int(day.timestamp())
    assert start <= now_unix_s
    return start


def previous_period_start_unix_s(period: Period, start_unix_s: int) -> int | None:
    """The start of the period before the one starting at `start_unix_s`; None for `total`."""
    if period is Period.TOTAL:
        return None
    assert start_unix_s >= 1
    return period_start_unix_s(period, start_unix_s - 1)


def period_key(period: Period, start_unix_s: int) -> str:
    if period is Period.TOTAL:
        return "total"
    return f"{period.value}-{datetime.fromtimestamp(start_unix_s, UTC):%Y%m%d}"
