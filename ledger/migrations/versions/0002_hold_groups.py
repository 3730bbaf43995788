"""Hold groups: holds placed on several accounts in one transaction and resolved together.

Adds `ledger_hold_groups` (one row per group: key, body hash, code, metadata, expiry, state), the
append-only `ledger_hold_group_resolutions` (UNIQUE(group_id): a group is resolved once), and a nullable
`ledger_holds.group_id` pointing members at their group. Single holds keep group_id NULL.

Revision ID: 0002_hold_groups
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_hold_groups"
down_revision = "0001"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY_TABLE = "ledger_hold_group_resolutions"


def _pk() -> sa.Column[int]:
    return sa.Column("id", PK, primary_key=True, autoincrement=True, nullable=False)


def _create_tables() -> None:
    op.create_table(
        "ledger_hold_groups",
        _pk(),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("resolved_at_unix_ms", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("idempotency_key"),
        sa.CheckConstraint(
            "state IN ('pending', 'captured', 'voided', 'expired')", name="ledger_hold_groups_state"
        ),
    )
    op.create_table(
        APPEND_ONLY_TABLE,
        _pk(),
        sa.Column("group_id", sa.BigInteger(), sa.ForeignKey("ledger_hold_groups.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at_unix_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("group_id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.CheckConstraint(
            "kind IN ('captured', 'voided', 'expired')", name="ledger_hold_group_resolutions_kind"
        ),
    )


def _add_group_column(dialect: str) -> None:
    if dialect == "sqlite":
        # SQLite adds a nullable column with an inline REFERENCES without rebuilding the table (a rebuild
        # would drop and rename a table that transactions and resolutions point at).
        op.execute("ALTER TABLE ledger_holds ADD COLUMN group_id BIGINT REFERENCES ledger_hold_groups (id)")
    else:
        op.add_column("ledger_holds", sa.Column("group_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            "ledger_holds_group_id_fkey", "ledger_holds", "ledger_hold_groups", ["group_id"], ["id"]
        )
    op.create_index("ix_ledger_holds_group_id", "ledger_holds", ["group_id"])


def _append_only_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {APPEND_ONLY_TABLE}_refuse_{operation.lower()} BEFORE {operation} "
                f"ON {APPEND_ONLY_TABLE} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger: {operation} on {APPEND_ONLY_TABLE} is refused "
                "(append-only)'); END"
            )
        return
    # ledger_refuse_change() was created by revision 0001.
    op.execute(
        f"CREATE TRIGGER {APPEND_ONLY_TABLE}_refuse_change BEFORE UPDATE OR DELETE ON {APPEND_ONLY_TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {APPEND_ONLY_TABLE}_refuse_truncate BEFORE TRUNCATE ON {APPEND_ONLY_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise RuntimeError(f"ledger supports SQLite and PostgreSQL, not {dialect}")
    _create_tables()
    _add_group_column(dialect)
    _append_only_triggers(dialect)


def downgrade() -> None:
    raise RuntimeError("the ledger is append-only; hold groups are never dropped by a migration")
