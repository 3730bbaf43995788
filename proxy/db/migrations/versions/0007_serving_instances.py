"""Serving instances with heartbeats, so the inference holds of a crashed process can be released.

Revision ID: p0007
Revises: p0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0007"
down_revision = "p0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("started_at_unix_ms", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at_unix_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_at_unix_ms", sa.BigInteger, nullable=True),
        sa.Column("end_reason", sa.String(16), nullable=True),
    )
    op.create_index("ix_serving_instances_name", "serving_instances", ["name"])


def downgrade() -> None:
    op.drop_index("ix_serving_instances_name", table_name="serving_instances")
    op.drop_table("serving_instances")
