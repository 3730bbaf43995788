"""x402 settlement intents.

Revision ID: p0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "x402_settlements",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(42), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("authorization_nonce", sa.String(66), nullable=False),
        sa.Column("value_atomic", sa.BigInteger(), nullable=False),
        sa.Column("valid_before_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("verified_payment_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("tx_nonce", sa.BigInteger(), nullable=True),
        sa.Column("from_block", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("transfer_log_index", sa.Integer(), nullable=True),
        sa.Column("ledger_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("error_reason", sa.String(80), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("network", "asset", "payer", "authorization_nonce",
                            name="uq_x402_settlements_replay_key"),
    )
    op.create_index("ix_x402_settlements_status", "x402_settlements", ["status"])


def downgrade() -> None:
    op.drop_index("ix_x402_settlements_status", "x402_settlements")
    op.drop_table("x402_settlements")
