"""Initial ledger schema: accounts, holds, transactions, entries, hold resolutions, reconciliation runs.

Also installs the append-only triggers (UPDATE/DELETE on entries, transactions and hold resolutions are
refused by the database itself) and, on PostgreSQL, a deferred constraint trigger that refuses to commit a
transaction whose entries do not sum to zero per unit.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY_TABLES = ("ledger_transactions", "ledger_entries", "ledger_hold_resolutions")


def _pk() -> sa.Column[int]:
    return sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False)


def _create_tables() -> None:
    op.create_table(
        "ledger_accounts",
        _pk(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("name"),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="ledger_accounts_sums_non_negative",
        ),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'income', 'expense')", name="ledger_accounts_type"
        ),
    )
    op.create_table(
        "ledger_holds",
        _pk(),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("debit_account_id", sa.BigInteger(), sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("credit_account_id", sa.BigInteger(), sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("captured_amount", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at_unix_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolution_transaction_id", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("idempotency_key"),
        sa.CheckConstraint("amount > 0", name="ledger_holds_amount_positive"),
        sa.CheckConstraint(
            "state IN ('pending', 'captured', 'voided', 'expired')", name="ledger_holds_state"
        ),
    )
    op.create_index("ix_ledger_holds_state_expires", "ledger_holds", ["state", "expires_at_unix_ms"])
    op.create_index("ix_ledger_holds_debit_account_id", "ledger_holds", ["debit_account_id"])
    op.create_index("ix_ledger_holds_credit_account_id", "ledger_holds", ["credit_account_id"])
    op.create_table(
        "ledger_transactions",
        _pk(),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), sa.ForeignKey("ledger_holds.id"), nullable=True),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("external_ref"),
    )
    op.create_table(
        "ledger_entries",
        _pk(),
        sa.Column("transaction_id", sa.BigInteger(), sa.ForeignKey("ledger_transactions.id"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ledger_entries_amount_non_zero"),
    )
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])
    op.create_index("ix_ledger_entries_account_id", "ledger_entries", ["account_id"])
    op.create_table(
        "ledger_hold_resolutions",
        _pk(),
        sa.Column("hold_id", sa.BigInteger(), sa.ForeignKey("ledger_holds.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), sa.ForeignKey("ledger_transactions.id"), nullable=True),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("hold_id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.CheckConstraint("kind IN ('captured', 'voided', 'expired')", name="ledger_hold_resolutions_kind"),
        sa.CheckConstraint("amount >= 0", name="ledger_hold_resolutions_amount_non_negative"),
    )
    op.create_table(
        "ledger_reconcile_runs",
        _pk(),
        sa.Column("started_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("movements_count", sa.BigInteger(), nullable=False),
        sa.Column("matched_count", sa.BigInteger(), nullable=False),
        sa.Column("breaks_count", sa.BigInteger(), nullable=False),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
    )
    op.create_table(
        "ledger_reconcile_breaks",
        _pk(),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("ledger_reconcile_runs.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("account", sa.String(255), nullable=True),
        sa.Column("ledger_amount_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column("external_amount_nano_usd", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=False),
    )
    op.create_index("ix_ledger_reconcile_breaks_run_id", "ledger_reconcile_breaks", ["run_id"])


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger: {operation} on {table} is refused (append-only)'); END"
            )


def _postgresql_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger: % on % is refused (append-only)', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    # Checked at COMMIT, once all of a transaction's entries are in: per unit they must sum to zero.
    op.execute(
        """
        CREATE FUNCTION ledger_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            bad_unit text;
        BEGIN
            SELECT a.unit INTO bad_unit
              FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
             WHERE e.transaction_id = NEW.transaction_id
             GROUP BY a.unit
            HAVING SUM(e.amount) <> 0
             LIMIT 1;
            IF bad_unit IS NOT NULL THEN
                RAISE EXCEPTION 'ledger: transaction % does not sum to zero in unit %',
                    NEW.transaction_id, bad_unit USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction_balanced()"
    )


def upgrade() -> None:
    _create_tables()
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_triggers()
    elif dialect == "postgresql":
        _postgresql_triggers()
    else:
        raise RuntimeError(f"ledger supports SQLite and PostgreSQL, not {dialect}")


def downgrade() -> None:
    raise RuntimeError("the ledger is append-only; its initial schema is never dropped by a migration")
