"""Stored Responses API responses: conversation state for `store` and `previous_response_id`, per API key.

Revision ID: p0016
Revises: p0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0016"
down_revision = "p0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.BigInteger, nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_unix_ms", sa.BigInteger, nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_index("ix_stored_responses_expires_at", "stored_responses", ["expires_at_unix_ms"])


def downgrade() -> None:
    op.drop_index("ix_stored_responses_expires_at", table_name="stored_responses")
    op.drop_table("stored_responses")
