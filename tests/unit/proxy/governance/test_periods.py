"""Budget periods are calendar UTC: a day from midnight, a week from Monday, a month from its first day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.governance.periods import Period, period_key, period_start_unix_s, previous_period_start_unix_s


def _unix(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("period", "now", "start", "key"),
    [
        (Period.DAY, _unix(2026, 12, 2, 23, 59, 59), _unix(2026, 12, 2), "day-20261202"),
        (Period.DAY, _unix(2026, 12, 3), _unix(2026, 12, 3), "day-20261203"),
        (Period.WEEK, _unix(2026, 12, 2, 12), _unix(2026, 11, 30), "week-20261130"),  # Wednesday → Monday
        (Period.WEEK, _unix(2026, 11, 30), _unix(2026, 11, 30), "week-20261130"),
        (Period.MONTH, _unix(2026, 12, 31, 23, 59, 59), _unix(2026, 12, 1), "month-20261201"),
        (Period.MONTH, _unix(2027, 1, 1), _unix(2027, 1, 1), "month-20270101"),
        (Period.TOTAL, _unix(2027, 1, 1), 0, "total"),
    ],
)
def test_period_start_and_key(period: Period, now: int, start: int, key: str) -> None:
    assert period_start_unix_s(period, now) == start
    assert period_key(period, start) == key


def test_previous_periods() -> None:
    assert previous_period_start_unix_s(Period.MONTH, _unix(2027, 1, 1)) == _unix(2026, 12, 1)
    assert previous_period_start_unix_s(Period.WEEK, _unix(2026, 11, 30)) == _unix(2026, 11, 23)
    assert previous_period_start_unix_s(Period.DAY, _unix(2026, 3, 1)) == _unix(2026, 2, 28)
    assert previous_period_start_unix_s(Period.TOTAL, 0) is None
