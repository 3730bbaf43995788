"""SQLModel tables of the ledger, in their own metadata (the proxy's tables live elsewhere).

Amounts and ids are BIGINT (int64; SQLModel would otherwise pick 4-byte INTEGER). On SQLite the primary keys
are INTEGER so they alias the rowid and autoincrement. The schema is created only by the Alembic migrations
in ledger/migrations; a test checks that the migrations and these classes agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, MetaData
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

__all__ = [
    "AccountRow",
    "EntryRow",
    "HoldGroupResolutionRow",
    "HoldGroupRow",
    "HoldResolutionRow",
    "HoldRow",
    "LedgerModel",
    "ReconcileBreakRow",
    "ReconcileRunRow",
    "TransactionRow",
    "ledger_metadata",
]

ledger_metadata = MetaData()
PK_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class LedgerModel(SQLModel, registry=registry(metadata=ledger_metadata)):
    """Base of the ledger's tables; keeps them out of SQLModel.metadata."""


class AccountRow(LedgerModel, table=True):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="ledger_accounts_sums_non_negative",
        ),
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'income', 'expense')", name="ledger_accounts_type"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    name: str = Field(max_length=255, unique=True)
    type: str = Field(max_length=16)
    unit: str = Field(max_length=32)
    flags: int = Field(default=0)
    debits_posted: int = Field(default=0, sa_type=BigInteger)
    credits_posted: int = Field(default=0, sa_type=BigInteger)
    debits_pending: int = Field(default=0, sa_type=BigInteger)
    credits_pending: int = Field(default=0, sa_type=BigInteger)
    created_at_unix_ms: int = Field(sa_type=BigInteger)


class HoldGroupRow(LedgerModel, table=True):
    """Holds placed and resolved together. Its members are the holds whose group_id points here; they
    share its code, metadata, expiry and state."""

    __tablename__ = "ledger_hold_groups"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'captured', 'voided', 'expired')", name="ledger_hold_groups_state"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    idempotency_key: str = Field(max_length=255, unique=True)
    body_hash: str = Field(max_length=64)
    code: str = Field(max_length=64)
    metadata_json: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at_unix_ms: int = Field(sa_type=BigInteger)
    expires_at_unix_ms: int = Field(sa_type=BigInteger)
    state: str = Field(max_length=16)
    resolved_at_unix_ms: int | None = Field(default=None, sa_type=BigInteger)


class HoldRow(LedgerModel, table=True):
    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ledger_holds_amount_positive"),
        CheckConstraint("state IN ('pending', 'captured', 'voided', 'expired')", name="ledger_holds_state"),
        Index("ix_ledger_holds_state_expires", "state", "expires_at_unix_ms"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    idempotency_key: str = Field(max_length=255, unique=True)
    body_hash: str = Field(max_length=64)
    code: str = Field(max_length=64)
    debit_account_id: int = Field(sa_type=BigInteger, foreign_key="ledger_accounts.id", index=True)
    credit_account_id: int = Field(sa_type=BigInteger, foreign_key="ledger_accounts.id", index=True)
    amount: int = Field(sa_type=BigInteger)
    metadata_json: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at_unix_ms: int = Field(sa_type=BigInteger)
    expires_at_unix_ms: int = Field(sa_type=BigInteger)
    state: str = Field(max_length=16)
    captured_amount: int | None = Field(default=None, sa_type=BigInteger)
    resolved_at_unix_ms: int | None = Field(default=None, sa_type=BigInteger)
    resolution_transaction_id: int | None = Field(default=None, sa_type=BigInteger)
    group_id: int | None = Field(
        default=None, sa_type=BigInteger, foreign_key="ledger_hold_groups.id", index=True
    )


class TransactionRow(LedgerModel, table=True):
    __tablename__ = "ledger_transactions"

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    idempotency_key: str = Field(max_length=255, unique=True)
    body_hash: str = Field(max_length=64)
    code: str = Field(max_length=64)
    external_ref: str | None = Field(default=None, max_length=255, unique=True)
    metadata_json: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    hold_id: int | None = Field(default=None, sa_type=BigInteger, foreign_key="ledger_holds.id")
    created_at_unix_ms: int = Field(sa_type=BigInteger)


class EntryRow(LedgerModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("amount <> 0", name="ledger_entries_amount_non_zero"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    transaction_id: int = Field(sa_type=BigInteger, foreign_key="ledger_transactions.id", index=True)
    account_id: int = Field(sa_type=BigInteger, foreign_key="ledger_accounts.id", index=True)
    amount: int = Field(sa_type=BigInteger)


class HoldResolutionRow(LedgerModel, table=True):
    """Append-only proof that a hold was resolved; UNIQUE(hold_id) makes a second resolution impossible."""

    __tablename__ = "ledger_hold_resolutions"
    __table_args__ = (
        CheckConstraint("kind IN ('captured', 'voided', 'expired')", name="ledger_hold_resolutions_kind"),
        CheckConstraint("amount >= 0", name="ledger_hold_resolutions_amount_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    hold_id: int = Field(sa_type=BigInteger, foreign_key="ledger_holds.id", unique=True)
    idempotency_key: str = Field(max_length=255, unique=True)
    body_hash: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    amount: int = Field(sa_type=BigInteger)
    transaction_id: int | None = Field(default=None, sa_type=BigInteger, foreign_key="ledger_transactions.id")
    created_at_unix_ms: int = Field(sa_type=BigInteger)


class HoldGroupResolutionRow(LedgerModel, table=True):
    """Append-only proof that a hold group was resolved; UNIQUE(group_id) makes a second resolution
    impossible. Each member's own resolution is in ledger_hold_resolutions as for a single hold."""

    __tablename__ = "ledger_hold_group_resolutions"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('captured', 'voided', 'expired')", name="ledger_hold_group_resolutions_kind"
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    group_id: int = Field(sa_type=BigInteger, foreign_key="ledger_hold_groups.id", unique=True)
    idempotency_key: str = Field(max_length=255, unique=True)
    body_hash: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    created_at_unix_ms: int = Field(sa_type=BigInteger)


class ReconcileRunRow(LedgerModel, table=True):
    __tablename__ = "ledger_reconcile_runs"

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    started_at_unix_ms: int = Field(sa_type=BigInteger)
    movements_count: int = Field(sa_type=BigInteger)
    matched_count: int = Field(sa_type=BigInteger)
    breaks_count: int = Field(sa_type=BigInteger)
    metadata_json: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class ReconcileBreakRow(LedgerModel, table=True):
    __tablename__ = "ledger_reconcile_breaks"

    id: int | None = Field(default=None, primary_key=True, sa_type=PK_TYPE)
    run_id: int = Field(sa_type=BigInteger, foreign_key="ledger_reconcile_runs.id", index=True)
    kind: str = Field(max_length=32)
    external_ref: str | None = Field(default=None, max_length=255)
    account: str | None = Field(default=None, max_length=255)
    ledger_amount_nano_usd: int | None = Field(default=None, sa_type=BigInteger)
    external_amount_nano_usd: int | None = Field(default=None, sa_type=BigInteger)
    detail: str = Field(max_length=1000)
