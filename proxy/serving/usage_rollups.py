"""Usage roll-ups, kept as requests complete: each usage event adds itself to its hour's row and its day's.

The upsert runs on the connection (and in the transaction) that inserts the usage event, which is the one
that captures or voids the request's hold: a roll-up never counts a request whose charge did not commit,
and never misses one that did. The row's key is (hour, model, provider, strategy, key, payer, org, unit,
member) and the period (hour or UTC day); a dimension that does not apply is '' or 0 (proxy/db/tables.py
says why not NULL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.driver_sql import DriverStatement
from proxy.db.latency_buckets import LATENCY_BUCKETS, latency_bucket, latency_column, ttft_column
from proxy.db.tables import usage_rollups

__all__ = [
    "COMPLETED_OUTCOME",
    "PERIODS_S",
    "ROLLUP_DIMENSIONS",
    "RollupDimensions",
    "upsert_usage_rollup",
    "wallet_of_payer",
]

PERIODS_S = (3_600, 86_400)  # An hour row and a day row per event.
COMPLETED_OUTCOME = "completed"  # Every other outcome counts as an error.
WALLET_PREFIX = "credit:wallet:"
ROLLUP_DIMENSIONS = (
    "period_s",
    "period_start_unix_s",
    "model_id",
    "provider",
    "strategy",
    "api_key_id",
    "payer_account",
    "org_id",
    "unit_id",
    "member_id",
)
_SUMMED = (
    "requests",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "spend_nano_usd",
    "overage_nano_usd",
    "latency_ms_sum",
    "ttft_count",
    "ttft_ms_sum",
    *(latency_column(bucket) for bucket in range(LATENCY_BUCKETS)),
    *(ttft_column(bucket) for bucket in range(LATENCY_BUCKETS)),
)


def wallet_of_payer(payer_account: str) -> str:
    """The paying wallet's address when a wallet's credit pays; '' for any other payer (an organization)."""
    return payer_account.removeprefix(WALLET_PREFIX) if payer_account.startswith(WALLET_PREFIX) else ""


@dataclass(frozen=True, slots=True)
class RollupDimensions:
    """Who and what a usage event is rolled up under; '' (or key 0) where a dimension does not apply.
    Governance fills org/unit/member from the usage event once it records them."""

    model_id: str
    provider: str
    strategy: str
    api_key_id: int
    payer_account: str
    org_id: str = ""
    unit_id: str = ""
    member_id: str = ""


def _row(
    dims: RollupDimensions,
    *,
    period_s: int,
    period_start_unix_s: int,
    outcome: str,
    tokens: dict[str, int],
    spend_nano_usd: int,
    overage_nano_usd: int,
    latency_ms: int,
    ttft_ms: int | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {name: 0 for name in _SUMMED}
    row |= {
        "period_s": period_s,
        "period_start_unix_s": period_start_unix_s,
        "model_id": dims.model_id,
        "provider": dims.provider,
        "strategy": dims.strategy,
        "api_key_id": dims.api_key_id,
        "payer_account": dims.payer_account,
        "wallet": wallet_of_payer(dims.payer_account),
        "org_id": dims.org_id,
        "unit_id": dims.unit_id,
        "member_id": dims.member_id,
        "requests": 1,
        "errors": 0 if outcome == COMPLETED_OUTCOME else 1,
        **tokens,
        "spend_nano_usd": spend_nano_usd,
        "overage_nano_usd": overage_nano_usd,
        "latency_ms_sum": latency_ms,
        "latency_ms_min": latency_ms,
        "latency_ms_max": latency_ms,
        latency_column(latency_bucket(latency_ms)): 1,
        "ttft_ms_min": ttft_ms,
        "ttft_ms_max": ttft_ms,
    }
    if ttft_ms is not None:
        row |= {"ttft_count": 1, "ttft_ms_sum": ttft_ms, ttft_column(latency_bucket(ttft_ms)): 1}
    return row


# Either side may be NULL: the stored one when its row has no TTFT yet, the new one when this event has
# none. PostgreSQL's LEAST/GREATEST skip NULLs; SQLite's two-argument min/max return NULL, hence COALESCE.
def _least(stored: ColumnElement[Any], new: ColumnElement[Any], *, postgresql: bool) -> ColumnElement[Any]:
    return func.least(stored, new) if postgresql else func.coalesce(func.min(stored, new), stored, new)


def _greatest(stored: ColumnElement[Any], new: ColumnElement[Any], *, postgresql: bool) -> ColumnElement[Any]:
    return func.greatest(stored, new) if postgresql else func.coalesce(func.max(stored, new), stored, new)


def _upsert(insert: Any, *, postgresql: bool) -> Any:
    """The upsert of one roll-up row, every value a bind parameter: built once per dialect and compiled once
    (a statement built per event cost more to compile than the rest of the request's accounting)."""
    statement = insert(usage_rollups)
    table, new = usage_rollups.c, statement.excluded
    updates: dict[str, Any] = {name: table[name] + new[name] for name in _SUMMED}
    for low, high in (("latency_ms_min", "latency_ms_max"), ("ttft_ms_min", "ttft_ms_max")):
        updates[low] = _least(table[low], new[low], postgresql=postgresql)
        updates[high] = _greatest(table[high], new[high], postgresql=postgresql)
    return statement.on_conflict_do_update(index_elements=list(ROLLUP_DIMENSIONS), set_=updates)


# Run as driver SQL: through SQLAlchemy's execution its 106 parameters cost ~5x the SQL itself.
_UPSERT_POSTGRESQL = DriverStatement(_upsert(postgresql_insert, postgresql=True))
_UPSERT_SQLITE = DriverStatement(_upsert(sqlite_insert, postgresql=False))


async def upsert_usage_rollup(
    connection: AsyncConnection,
    dims: RollupDimensions,
    *,
    created_unix_s: int,
    outcome: str,
    tokens: dict[str, int],
    spend_nano_usd: int,
    overage_nano_usd: int,
    latency_ms: int,
    ttft_ms: int | None,
) -> None:
    """Adds one usage event to its hour's and its day's roll-up rows on `connection` (inside the caller's
    transaction)."""
    assert set(tokens) == {"input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"}
    assert spend_nano_usd >= 0
    assert latency_ms >= 0
    rows = [
        _row(
            dims,
            period_s=period_s,
            period_start_unix_s=created_unix_s - created_unix_s % period_s,
            outcome=outcome,
            tokens=tokens,
            spend_nano_usd=spend_nano_usd,
            overage_nano_usd=overage_nano_usd,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
        )
        for period_s in PERIODS_S
    ]
    upsert = _UPSERT_POSTGRESQL if connection.dialect.name == "postgresql" else _UPSERT_SQLITE
    for row in rows:
        await upsert.execute(connection, row)
