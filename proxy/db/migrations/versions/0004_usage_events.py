"""Usage events: one explainable record per request.

Revision ID: p0004
Revises: p0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0004"
down_revision = "p0003"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payer_account", sa.String(255), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("strategy", sa.String(32), nullable=True),
        sa.Column("attempts_json", sa.Text(), nullable=False),
        sa.Column("streamed", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("usage_estimated", sa.Integer(), nullable=False),
        sa.Column("prices_json", sa.Text(), nullable=False),
        sa.Column("catalog_version", sa.String(128), nullable=False),
        sa.Column("quote_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("time_to_first_token_ms", sa.Integer(), nullable=True),
    )
    op.create_index("ix_usage_events_payer_created", "usage_events", ["payer_account", "created_at"])
    op.create_index("ix_usage_events_request", "usage_events", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_request", "usage_events")
    op.drop_index("ix_usage_events_payer_created", "usage_events")
    op.drop_table("usage_events")
