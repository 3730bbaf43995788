"""Analytics over the hourly usage roll-ups: requests, errors, tokens, spend and latency percentiles per
hour or day bucket, grouped by any of model, provider, strategy, key, wallet, org, unit and member.

Answers come from sums over `usage_rollups` (proxy/serving/usage_rollups.py), never from raw usage events;
percentiles merge the rows' fixed histograms (proxy/db/latency_buckets.py). Who sees which rows is an
`AnalyticsScope`, decided at the edge (proxy/api/handlers/analytics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

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
# A month of hours or a year of days per query; beyond that, a caller asks in pieces.
BUCKETS_MAX: dict[str, int] = {"hour": 31 * 24, "day": 366}
GROUP_BY_MAX = 3
ANALYTICS_ROWS_MAX = 10_000
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
_PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


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


class Percentiles(BaseModel):
    p50: int
    p95: int
    p99: int


class AnalyticsRow(BaseModel):
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


class AnalyticsReport(BaseModel):
    object: Literal["analytics"] = "analytics"
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


def histogram_percentile_ms(counts: Sequence[int], quantile: float, *, min_ms: int, max_ms: int) -> int:
    """The nearest-rank `quantile` of the values counted in `counts`, to within its bucket.

    The value of rank ceil(q·n) lies in bucket i; we answer that bucket's upper edge, clamped to the observed
    [min, max], so the answer is never below the true percentile's bucket nor above any value seen.
    """
    assert len(counts) == LATENCY_BUCKETS
    assert 0 < quantile <= 1
    total = sum(counts)
    assert total > 0
    rank = max(1, -int(-quantile * total // 1))  # ceil(q·n), at least the first value
    seen = 0
    for bucket, count in enumerate(counts):
        seen += count
        if seen >= rank:
            lower, upper = latency_bucket_bounds_ms(bucket)
            edge = max_ms if upper is None else upper - 1
            return max(min_ms, min(max_ms, max(lower, edge)))
    raise AssertionError("the ranks of a histogram end at its total")


def _select(query: AnalyticsQuery, scope: AnalyticsScope) -> Select[Any]:
    c = usage_rollups.c
    bucket_start = (
        c.hour_start_unix_s if query.bucket == "hour" else (c.hour_start_unix_s // 86_400) * 86_400
    ).label("bucket_start")
    groups = [c[_DIMENSION_COLUMNS[name]].label(f"g_{name}") for name in query.group_by]
    measures = [
        *(func.sum(c[name]).label(name) for name in _SUMS),
        func.min(c.latency_ms_min).label("latency_ms_min"),
        func.max(c.latency_ms_max).label("latency_ms_max"),
        func.min(c.ttft_ms_min).label("ttft_ms_min"),
        func.max(c.ttft_ms_max).label("ttft_ms_max"),
        func.sum(c.ttft_count).label("ttft_count"),
        *(func.sum(c[latency_column(b)]).label(latency_column(b)) for b in range(LATENCY_BUCKETS)),
        *(func.sum(c[ttft_column(b)]).label(ttft_column(b)) for b in range(LATENCY_BUCKETS)),
    ]
    start, end = query.range_unix_s
    statement = select(bucket_start, *groups, *measures).where(
        c.hour_start_unix_s >= start, c.hour_start_unix_s < end
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


def _row(query: AnalyticsQuery, row: Any) -> AnalyticsRow:
    requests, errors = int(row.requests), int(row.errors)
    assert requests > 0
    latency_counts = [int(row._mapping[latency_column(b)]) for b in range(LATENCY_BUCKETS)]
    ttft_counts = [int(row._mapping[ttft_column(b)]) for b in range(LATENCY_BUCKETS)]
    latency = Percentiles(
        **{
            label: histogram_percentile_ms(
                latency_counts, q, min_ms=int(row.latency_ms_min), max_ms=int(row.latency_ms_max)
            )
            for label, q in _PERCENTILES
        }
    )
    ttft = None
    if int(row.ttft_count) > 0:
        ttft = Percentiles(
            **{
                label: histogram_percentile_ms(
                    ttft_counts, q, min_ms=int(row.ttft_ms_min), max_ms=int(row.ttft_ms_max)
                )
                for label, q in _PERCENTILES
            }
        )
    spend_nano_usd = int(row.spend_nano_usd)
    return AnalyticsRow(
        bucket_start=int(row.bucket_start),
        group={name: _group_value(name, row._mapping[f"g_{name}"]) for name in query.group_by},
        requests=requests,
        errors=errors,
        error_rate=errors / requests,
        input_tokens=int(row.input_tokens),
        cached_input_tokens=int(row.cached_input_tokens),
        output_tokens=int(row.output_tokens),
        reasoning_tokens=int(row.reasoning_tokens),
        spend_nano_usd=spend_nano_usd,
        spend_usd=nano_usd_text(spend_nano_usd),
        latency_ms=latency,
        ttft_ms=ttft,
    )


async def run_analytics(engine: AsyncEngine, query: AnalyticsQuery, scope: AnalyticsScope) -> AnalyticsReport:
    """The report for `query` over what `scope` may see; raises AnalyticsTooLarge past ANALYTICS_ROWS_MAX."""
    async with engine.connect() as connection:
        rows = (await connection.execute(_select(query, scope))).all()
    if len(rows) > ANALYTICS_ROWS_MAX:
        raise AnalyticsTooLarge(f"more than {ANALYTICS_ROWS_MAX} rows")
    start, end = query.range_unix_s
    return AnalyticsReport(
        bucket=query.bucket,
        start=start,
        end=end,
        group_by=list(query.group_by),
        data=[_row(query, row) for row in rows],
    )
