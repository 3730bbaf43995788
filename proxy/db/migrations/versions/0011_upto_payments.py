"""x402 `upto` payments share the settlement intents of `exact`: which scheme, and the signed maximum.

For `upto`, `value_atomic` starts as the signed maximum (what the payer's in-flight reservation holds) and
becomes the amount to settle once the request's cost is captured; `max_atomic` keeps the maximum.

Revision ID: p0011
Revises: p0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0011"
down_revision = "p0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("x402_settlements") as batch:
        batch.add_column(sa.Column("scheme", sa.String(8), nullable=False, server_default="exact"))
        batch.add_column(sa.Column("max_atomic", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("x402_settlements") as batch:
        batch.drop_column("max_atomic")
        batch.drop_column("scheme")
