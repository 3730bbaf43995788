"""Chain watcher cursors.

Revision ID: p0002
Revises: p0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_watch_cursors",
        sa.Column("network", sa.String(64), primary_key=True, nullable=False),
        sa.Column("asset", sa.String(42), primary_key=True, nullable=False),
        sa.Column("next_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block_hash", sa.String(66), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chain_watch_cursors")
