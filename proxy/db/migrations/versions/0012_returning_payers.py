"""Returning payers: the nonces of accepted x402 `sign-in-with-x` proofs (replay protection).

Revision ID: p0012
Revises: p0016
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0012"
down_revision = "p0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "siwx_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("expires_at_unix_s", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_siwx_nonces_expires_at_unix_s", "siwx_nonces", ["expires_at_unix_s"])


def downgrade() -> None:
    op.drop_index("ix_siwx_nonces_expires_at_unix_s", table_name="siwx_nonces")
    op.drop_table("siwx_nonces")
