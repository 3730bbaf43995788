"""Hourly usage roll-ups (analytics without scanning raw events), backfilled from the existing usage events.

Revision ID: p0009
Revises: p0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from proxy.db.latency_buckets import LATENCY_BUCKET_EDGES_MS, LATENCY_BUCKETS, latency_column, ttft_column

revision = "p0009"
down_revision = "p0014"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PERIODS_S = (3_600, 86_400)  # Hour rows and day rows (proxy/db/tables.py).
DIMENSIONS = (
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
# Governance (the orgs issue) adds these to usage events; until then the roll-ups hold '' for them.
GOVERNANCE_COLUMNS = ("org_id", "unit_id", "member_id")
WALLET_PREFIX = "credit:wallet:"


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("period_start_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_account", sa.String(255), nullable=False),
        sa.Column("wallet", sa.String(42), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "requests",
                "errors",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "spend_nano_usd",
                "overage_nano_usd",
                "latency_ms_sum",
                "latency_ms_min",
                "latency_ms_max",
                "ttft_count",
                "ttft_ms_sum",
            )
        ),
        sa.Column("ttft_ms_min", sa.BigInteger(), nullable=True),
        sa.Column("ttft_ms_max", sa.BigInteger(), nullable=True),
        *(sa.Column(latency_column(b), sa.Integer(), nullable=False) for b in range(LATENCY_BUCKETS)),
        *(sa.Column(ttft_column(b), sa.Integer(), nullable=False) for b in range(LATENCY_BUCKETS)),
        sa.UniqueConstraint(*DIMENSIONS, name="uq_usage_rollups_dims"),
    )
    op.create_index(
        "ix_usage_rollups_payer_period", "usage_rollups", ["payer_account", "period_s", "period_start_unix_s"]
    )
    backfill_usage_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_usage_rollups_payer_period", table_name="usage_rollups")
    op.drop_table("usage_rollups")


def _bucket_counts(value: str, column: Callable[[int], str]) -> list[str]:
    """One SUM per histogram bucket of `value` (a NULL value counts in none)."""
    edges = LATENCY_BUCKET_EDGES_MS
    sums = []
    for bucket in range(LATENCY_BUCKETS):
        conditions = [f"{value} IS NOT NULL"]
        if bucket > 0:
            conditions.append(f"{value} >= {edges[bucket - 1]}")
        if bucket < len(edges):
            conditions.append(f"{value} < {edges[bucket]}")
        sums.append(f"SUM(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END) AS {column(bucket)}")
    return sums


def backfill_usage_rollups(connection: Connection) -> None:
    """Rolls every usage event up, one INSERT … SELECT per period (the same sums the serving path keeps)."""
    for period_s in PERIODS_S:
        _backfill_period(connection, period_s)


def _backfill_period(connection: Connection, period_s: int) -> None:
    if connection.dialect.name == "postgresql":
        unix_s = "CAST(FLOOR(EXTRACT(EPOCH FROM created_at)) AS BIGINT)"
        text_of = "CAST({} AS VARCHAR)"
    else:
        unix_s = "CAST(strftime('%s', created_at) AS INTEGER)"
        text_of = "CAST({} AS TEXT)"
    event_columns = {column["name"] for column in sa.inspect(connection).get_columns("usage_events")}
    governance = [
        f"COALESCE({text_of.format(name)}, '')" if name in event_columns else "''"
        for name in GOVERNANCE_COLUMNS
    ]
    keys = [
        str(period_s),
        f"({unix_s} / {period_s}) * {period_s}",
        "COALESCE(model_id, '')",
        "COALESCE(provider, '')",
        "COALESCE(strategy, '')",
        "COALESCE(api_key_id, 0)",
        "payer_account",
        *governance,
    ]
    wallet = (
        f"CASE WHEN payer_account LIKE '{WALLET_PREFIX}%' "
        f"THEN SUBSTR(payer_account, {len(WALLET_PREFIX) + 1}) ELSE '' END"
    )
    measures = [
        "COUNT(*)",
        "SUM(CASE WHEN outcome = 'completed' THEN 0 ELSE 1 END)",
        "SUM(input_tokens)",
        "SUM(cached_input_tokens)",
        "SUM(output_tokens)",
        "SUM(reasoning_tokens)",
        "SUM(cost_nano_usd)",
        "SUM(overage_nano_usd)",
        "SUM(latency_ms)",
        "MIN(latency_ms)",
        "MAX(latency_ms)",
        "COUNT(time_to_first_token_ms)",
        "COALESCE(SUM(time_to_first_token_ms), 0)",
        "MIN(time_to_first_token_ms)",
        "MAX(time_to_first_token_ms)",
    ]
    targets = [
        *DIMENSIONS,
        "wallet",
        "requests",
        "errors",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "spend_nano_usd",
        "overage_nano_usd",
        "latency_ms_sum",
        "latency_ms_min",
        "latency_ms_max",
        "ttft_count",
        "ttft_ms_sum",
        "ttft_ms_min",
        "ttft_ms_max",
        *(latency_column(b) for b in range(LATENCY_BUCKETS)),
        *(ttft_column(b) for b in range(LATENCY_BUCKETS)),
    ]
    selected = [
        *keys,
        f"MAX({wallet})",
        *measures,
        *_bucket_counts("latency_ms", latency_column),
        *_bucket_counts("time_to_first_token_ms", ttft_column),
    ]
    group_by = ", ".join(str(position) for position in range(1, len(keys) + 1))
    connection.exec_driver_sql(
        f"INSERT INTO usage_rollups ({', '.join(targets)}) "
        f"SELECT {', '.join(selected)} FROM usage_events GROUP BY {group_by}"
    )
