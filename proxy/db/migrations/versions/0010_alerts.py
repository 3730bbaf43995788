"""The alert outbox (alerts, alert_deliveries) and the usage-event indexes the spend detector reads by.

Revision ID: p0010
Revises: p0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0010"
down_revision = "p0012"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("seq", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("kind", "dedup_key", name="uq_alerts_kind_dedup_key"),
    )
    op.create_index("ix_alerts_kind_seq", "alerts", ["kind", "seq"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("alert_seq", sa.BigInteger(), nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_attempt_at_unix_ms", sa.BigInteger(), nullable=True),
        sa.Column("delivered_at_unix_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.UniqueConstraint("alert_seq", "endpoint", name="uq_alert_deliveries_alert_endpoint"),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["state", "next_attempt_at_unix_ms"])
    op.create_index("ix_usage_events_created", "usage_events", ["created_at"])
    op.create_index("ix_usage_events_key_created", "usage_events", ["api_key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_key_created", table_name="usage_events")
    op.drop_index("ix_usage_events_created", table_name="usage_events")
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_kind_seq", table_name="alerts")
    op.drop_table("alerts")
