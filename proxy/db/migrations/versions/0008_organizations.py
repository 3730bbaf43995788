"""Organizations: units, members with roles, org keys, budgets, rate limits, budget alerts, audit log;
usage events name the org, unit, member and key that made a request.

Revision ID: p0008
Revises: p0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0008"
down_revision = "p0011"
branch_labels = None
depends_on = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    op.create_table(
        "org_organizations",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("root_unit_id", sa.BigInteger, nullable=True),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "org_units",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("parent_id", sa.BigInteger, nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_org_units_org", "org_units", ["org_id"])
    op.create_table(
        "org_members",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("wallet", sa.String(42), nullable=False),
        sa.Column("unit_id", sa.BigInteger, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_org_members_wallet", "org_members", ["wallet"])
    op.create_index("ix_org_members_org", "org_members", ["org_id"])
    op.create_table(
        "org_keys",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("unit_id", sa.BigInteger, nullable=False),
        sa.Column("member_id", sa.BigInteger, nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_org_keys_org", "org_keys", ["org_id"])
    op.create_table(
        "org_budgets",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("scope_kind", sa.String(8), nullable=False),
        sa.Column("scope_id", sa.BigInteger, nullable=False),
        sa.Column("amount_nano_usd", sa.BigInteger, nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("alert_at_bp_json", sa.Text, nullable=False),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_org_budgets_scope", "org_budgets", ["scope_kind", "scope_id"])
    op.create_table(
        "org_rate_limits",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("scope_kind", sa.String(8), nullable=False),
        sa.Column("scope_id", sa.BigInteger, nullable=False),
        sa.Column("requests_per_minute", sa.BigInteger, nullable=True),
        sa.Column("tokens_per_minute", sa.BigInteger, nullable=True),
        sa.Column("created_at_unix_s", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_unix_s", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_org_rate_limits_scope", "org_rate_limits", ["scope_kind", "scope_id"])
    op.create_table(
        "org_deposit_wallets",
        sa.Column("wallet", sa.String(42), primary_key=True),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("registered_at_unix_s", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "org_budget_alerts",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("budget_id", sa.BigInteger, nullable=False),
        sa.Column("period_start_unix_s", sa.BigInteger, nullable=False),
        sa.Column("threshold_bp", sa.Integer, nullable=False),
        sa.Column("spend_nano_usd", sa.BigInteger, nullable=False),
        sa.Column("amount_nano_usd", sa.BigInteger, nullable=False),
        sa.Column("crossed_at_unix_s", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "budget_id", "period_start_unix_s", "threshold_bp", name="uq_org_budget_alerts_crossing"
        ),
    )
    op.create_table(
        "org_audit_log",
        _id(),
        sa.Column("org_id", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.BigInteger, nullable=True),
        sa.Column("before_json", sa.Text, nullable=True),
        sa.Column("after_json", sa.Text, nullable=True),
        sa.Column("at_unix_s", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_org_audit_log_org", "org_audit_log", ["org_id", "id"])
    with op.batch_alter_table("usage_events") as batch:
        for name in ("org_id", "org_unit_id", "org_member_id", "org_key_id"):
            batch.add_column(sa.Column(name, sa.BigInteger, nullable=True))
    op.create_index("ix_usage_events_org_created", "usage_events", ["org_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_org_created", table_name="usage_events")
    with op.batch_alter_table("usage_events") as batch:
        for name in ("org_key_id", "org_member_id", "org_unit_id", "org_id"):
            batch.drop_column(name)
    op.drop_index("ix_org_audit_log_org", table_name="org_audit_log")
    op.drop_table("org_audit_log")
    op.drop_table("org_budget_alerts")
    op.drop_table("org_deposit_wallets")
    op.drop_index("ix_org_rate_limits_scope", table_name="org_rate_limits")
    op.drop_table("org_rate_limits")
    op.drop_index("ix_org_budgets_scope", table_name="org_budgets")
    op.drop_table("org_budgets")
    op.drop_index("ix_org_keys_org", table_name="org_keys")
    op.drop_table("org_keys")
    op.drop_index("ix_org_members_org", table_name="org_members")
    op.drop_index("ix_org_members_wallet", table_name="org_members")
    op.drop_table("org_members")
    op.drop_index("ix_org_units_org", table_name="org_units")
    op.drop_table("org_units")
    op.drop_table("org_organizations")
