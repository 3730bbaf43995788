"""Analytics over the hourly usage roll-ups: requests, errors, tokens, spend and latency percentiles per
hour or day bucket, grouped by any of model, provider, strategy, key, wallet, org, unit and member.

Answers come from sums over `usage_rollups` (proxy/serving/usage_rollups.py), never from raw usage events;
percentiles merge the rows' fixed histograms (proxy/db/latency_buckets.py). Who sees which rows is an
`AnalyticsScope`, decided at the edge (proxy/api/handlers/analytics.py).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.db.latency_buckets import (
    LATENCY_BUCKETS,
    latency_bucket_bounds_ms,
    latency_column,
    ttft_column,
)
from proxy.db.tables import usage_rollups
from proxy.money import NANO_USD_PER_USD
from proxy.serving.usage_rollups import PERIODS_S

__all__ = [
    "ANALYTICS_ROWS_MAX",
    "BUCKETS_MAX",
    "BUCKET_S",
    "DIMENSIONS",
    "GROUP_BY_MAX",
    "AnalyticsQuery",
    "AnalyticsReport",
    "AnalyticsRow",
    "AnalyticsScope",
    "AnalyticsTooLarge",
    "Percentiles",
    "histogram_percentile_ms",
    "nano_usd_text",
    "run_analytics",
]

Bucket = Literal["hour", "day"]
Dimension = Literal["model", "provider", "strategy", "key", "wallet", "org", "unit", "member"]
BUCKET_S: dict[str, int] = {"hour": 3_600, "day": 86_400}
assert tuple(BUCKET_S.values()) == PERIODS_S, "a bucket is a period the roll-ups keep"
# A month of hours or a year of days per query; beyond that, a caller asks in pieces.
BUCKETS_MAX: dict[str, int] = {"hour": 31 * 24, "day": 366}
GROUP_BY_MAX = 3
ANALYTICS_ROWS_MAX = 10_000
QUERY_WORK_MEM_MB = 64
_DIMENSION_COLUMNS: dict[str, str] = {
    "model": "model_id",
    "provider": "provider",
    "strategy": "strategy",
    "key": "api_key_id",
    "wallet": "wallet",
    "org": "org_id",
    "unit": "unit_id",
    "member": "member_id",
}
DIMENSIONS: tuple[str, ...] = tuple(_DIMENSION_COLUMNS)
_SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "spend_nano_usd",
)
_QUANTILES = (0.50, 0.95, 0.99)
# Position of the first histogram count in a result row with no group columns.
_HISTOGRAMS_AT = 1 + len(_SUMS) + 5
# The last whole ms of each bucket (None: the open-ended last bucket).
_BUCKET_LAST_MS: tuple[int | None, ...] = tuple(
    None if upper is None else upper - 1
    for upper in (latency_bucket_bounds_ms(bucket)[1] for bucket in range(LATENCY_BUCKETS))
)


class AnalyticsTooLarge(Exception):
    """The answer would have more than ANALYTICS_ROWS_MAX rows: narrow the range, grouping or filters."""


class AnalyticsScope(BaseModel):
    """The roll-up rows a caller may see: all (the operator), or those matching any listed payer, org or
    unit. Org roles (governance) see their subtree by listing its units (or the whole org)."""

    model_config = ConfigDict(frozen=True)

    everything: bool = False
    payer_accounts: frozenset[str] = frozenset()
    org_ids: frozenset[str] = frozenset()
    unit_ids: frozenset[str] = frozenset()

    def condition(self) -> ColumnElement[bool] | None:
        """A WHERE condition, or None when everything is visible."""
        if self.everything:
            return None
        c = usage_rollups.c
        parts = [
            column.in_(sorted(values))
            for column, values in (
                (c.payer_account, self.payer_accounts),
                (c.org_id, self.org_ids),
                (c.unit_id, self.unit_ids),
            )
            if values
        ]
        return or_(*parts) if parts else false()


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start_unix_s: int = Field(ge=0)
    end_unix_s: int = Field(ge=0)
    bucket: Bucket = "hour"
    group_by: tuple[Dimension, ...] = Field(default=(), max_length=GROUP_BY_MAX)
    model: str | None = Field(default=None, min_length=1, max_length=255)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    api_key_id: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _valid_range(self) -> AnalyticsQuery:
        if self.end_unix_s <= self.start_unix_s:
            raise ValueError("end must be after start")
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by names a dimension twice")
        if self.buckets > BUCKETS_MAX[self.bucket]:
            raise ValueError(f"at most {BUCKETS_MAX[self.bucket]} {self.bucket} buckets per query")
        return self

    @property
    def bucket_s(self) -> int:
        return BUCKET_S[self.bucket]

    @property
    def range_unix_s(self) -> tuple[int, int]:
        """[start, end) widened to whole buckets: every bucket returned is complete."""
        start = self.start_unix_s - self.start_unix_s % self.bucket_s
        end = -(-self.end_unix_s // self.bucket_s) * self.bucket_s
        return start, end

    @property
    def buckets(self) -> int:
        start, end = self.range_unix_s
        return (end - start) // self.bucket_s


# The answer's rows are TypedDicts, not models: built from integers computed here, they need no validation,
# and a month by hour is thousands of rows, where a model's validation and dump would double the time.
class Percentiles(TypedDict):
    p50: int
    p95: int
    p99: int


class AnalyticsRow(TypedDict):
    bucket_start: int
    group: dict[str, str | int | None]
    requests: int
    errors: int
    error_rate: float
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    spend_nano_usd: int
    spend_usd: str
    latency_ms: Percentiles
    ttft_ms: Percentiles | None


class AnalyticsReport(TypedDict):
    """The answer, JSON as it is (GET /v1/analytics renders it unchanged)."""

    object: Literal["analytics"]
    bucket: Bucket
    start: int
    end: int
    group_by: list[str]
    data: list[AnalyticsRow]


def nano_usd_text(amount_nano_usd: int) -> str:
    """Exact decimal USD text of a nano-USD amount ('1.250000000'); never through a float."""
    assert amount_nano_usd >= 0
    whole, fraction = divmod(amount_nano_usd, NANO_USD_PER_USD)
    return f"{whole}.{fraction:09d}"


def histogram_percentiles_ms(
    counts: Sequence[int], quantiles: Sequence[float], *, min_ms: int, max_ms: int
) -> list[int]:
    """The nearest-rank `quantiles` (ascending) of the values counted in `counts`, each to within its bucket.

    The value of rank ceil(q·n) lies in bucket i; we answer that bucket's last whole ms, clamped to the
    observed [min, max]: never below the true percentile, never above any value seen, always in its bucket.
    """
    assert len(counts) == LATENCY_BUCKETS
    cumulative = list(accumulate(counts))
    total = cumulative[-1]
    assert total > 0
    answers = []
    for quantile in quantiles:
        assert 0 < quantile <= 1
        # The bucket holding the value of rank ceil(q·n): the first whose running count reaches it.
        bucket = bisect_left(cumulative, max(1, math.ceil(quantile * total)))
        upper = _BUCKET_LAST_MS[bucket]
        answers.append(max(min_ms, max_ms if upper is None else min(max_ms, upper)))
    return answers


def histogram_percentile_ms(counts: Sequence[int], quantile: float, *, min_ms: int, max_ms: int) -> int:
    """One nearest-rank percentile (see histogram_percentiles_ms)."""
    return histogram_percentiles_ms(counts, [quantile], min_ms=min_ms, max_ms=max_ms)[0]


def _select(query: AnalyticsQuery, scope: AnalyticsScope) -> Select[Any]:
    c = usage_rollups.c
    bucket_start = c.period_start_unix_s
    groups = [c[_DIMENSION_COLUMNS[name]].label(f"g_{name}") for name in query.group_by]
    # The order `_row` reads by position: bucket, groups, sums, min/max, TTFT count, then the histograms.
    measures = [
        *(func.sum(c[name]) for name in _SUMS),
        func.min(c.latency_ms_min),
        func.max(c.latency_ms_max),
        func.min(c.ttft_ms_min),
        func.max(c.ttft_ms_max),
        func.sum(c.ttft_count),
        *(func.sum(c[latency_column(b)]) for b in range(LATENCY_BUCKETS)),
        *(func.sum(c[ttft_column(b)]) for b in range(LATENCY_BUCKETS)),
    ]
    assert len(measures) == _HISTOGRAMS_AT - 1 + 2 * LATENCY_BUCKETS
    start, end = query.range_unix_s
    statement = select(bucket_start, *groups, *measures).where(
        c.period_s == query.bucket_s, c.period_start_unix_s >= start, c.period_start_unix_s < end
    )
    if query.model is not None:
        statement = statement.where(c.model_id == query.model)
    if query.provider is not None:
        statement = statement.where(c.provider == query.provider)
    if query.api_key_id is not None:
        statement = statement.where(c.api_key_id == query.api_key_id)
    visible = scope.condition()
    if visible is not None:
        statement = statement.where(visible)
    order = [bucket_start, *groups]
    return statement.group_by(*order).order_by(*order).limit(ANALYTICS_ROWS_MAX + 1)


def _group_value(name: str, stored: Any) -> str | int | None:
    # '' and key 0 are how the roll-ups store "does not apply"; the API says null.
    if name == "key":
        return int(stored) if stored else None
    return str(stored) if stored else None


def _percentiles(counts: Sequence[int], *, min_ms: int, max_ms: int) -> Percentiles:
    p50, p95, p99 = histogram_percentiles_ms(counts, _QUANTILES, min_ms=min_ms, max_ms=max_ms)
    return {"p50": p50, "p95": p95, "p99": p99}


def _row(query: AnalyticsQuery, row: Sequence[Any]) -> AnalyticsRow:
    """One result row, read by position (the layout `_select` builds): by name it costs several times more."""
    groups = len(query.group_by)
    (
        bucket_start,
        requests,
        errors,
        input_tokens,
        cached_input_tokens,
        output_tokens,
        reasoning_tokens,
        spend_nano_usd,
        latency_ms_min,
        latency_ms_max,
        ttft_ms_min,
        ttft_ms_max,
        ttft_count,
    ) = (
        # PostgreSQL sums BIGINTs as NUMERIC (Decimal): exact, and integral here. Only the TTFT min and max
        # can be NULL, when no request of the group had a TTFT (ttft_count 0: they are not read then).
        int(value or 0)
        for value in (row[0], *row[1 + groups : _HISTOGRAMS_AT + groups])
    )
    assert requests > 0
    latency_at = _HISTOGRAMS_AT + groups
    ttft_at = latency_at + LATENCY_BUCKETS
    latency = _percentiles(row[latency_at:ttft_at], min_ms=latency_ms_min, max_ms=latency_ms_max)
    ttft = None
    if ttft_count:
        ttft = _percentiles(row[ttft_at : ttft_at + LATENCY_BUCKETS], min_ms=ttft_ms_min, max_ms=ttft_ms_max)
    return {
        "bucket_start": bucket_start,
        "group": {name: _group_value(name, row[1 + index]) for index, name in enumerate(query.group_by)},
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests,
        "input_tokens": input_tokens,
        "cached_input_tokens": cached_input_tokens,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning_tokens,
        "spend_nano_usd": spend_nano_usd,
        "spend_usd": nano_usd_text(spend_nano_usd),
        "latency_ms": latency,
        "ttft_ms": ttft,
    }


async def run_analytics(engine: AsyncEngine, query: AnalyticsQuery, scope: AnalyticsScope) -> AnalyticsReport:
    """The report for `query` over what `scope` may see; raises AnalyticsTooLarge past ANALYTICS_ROWS_MAX."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Enough memory to hash-aggregate the wide roll-up rows: with the default 4 MB, PostgreSQL
            # sorts them on disk instead, several times slower. SET LOCAL ends with this transaction.
            await connection.exec_driver_sql(f"SET LOCAL work_mem = '{QUERY_WORK_MEM_MB}MB'")
        rows = (await connection.execute(_select(query, scope))).all()
    if len(rows) > ANALYTICS_ROWS_MAX:
        raise AnalyticsTooLarge(f"more than {ANALYTICS_ROWS_MAX} rows")
    start, end = query.range_unix_s
    return {
        "object": "analytics",
        "bucket": query.bucket,
        "start": start,
        "end": end,
        "group_by": list(query.group_by),
        "data": [_row(query, row) for row in rows],
    }
