"""Prepaid wallet accounts: sign-in challenges, wallet-bound API keys, withdrawals.

Revision ID: p0003
Revises: p0002
Create Date: 2026-11-26

Written in parallel with p0002 (chain watcher), which also revises p0001; at merge this revision is
re-chained to revise p0002 so the history stays linear (two heads would stop `upgrade head`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0003"
down_revision = "p0002"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "account_challenges",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False, unique=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("issued_at_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("used_at_unix_s", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "account_api_keys",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("wallet", sa.String(42), nullable=False),
        sa.Column("credit_account", sa.String(255), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("created_at_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at_unix_s", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at_unix_s", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_account_api_keys_wallet", "account_api_keys", ["wallet"])
    op.create_table(
        "account_withdrawals",
        sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("wallet", sa.String(42), nullable=False),
        sa.Column("request_nonce", sa.String(66), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(42), nullable=False),
        sa.Column("destination", sa.String(42), nullable=False),
        sa.Column("amount_atomic", sa.BigInteger(), nullable=False),
        sa.Column("amount_nano_usd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("tx_nonce", sa.BigInteger(), nullable=True),
        sa.Column("from_block", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("transfer_log_index", sa.Integer(), nullable=True),
        sa.Column("ledger_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("error_reason", sa.String(80), nullable=True),
        sa.Column("created_at_unix_s", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_unix_s", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("wallet", "request_nonce", name="uq_account_withdrawals_request"),
    )
    op.create_index("ix_account_withdrawals_status", "account_withdrawals", ["status"])


def downgrade() -> None:
    op.drop_index("ix_account_withdrawals_status", "account_withdrawals")
    op.drop_table("account_withdrawals")
    op.drop_index("ix_account_api_keys_wallet", "account_api_keys")
    op.drop_table("account_api_keys")
    op.drop_table("account_challenges")
