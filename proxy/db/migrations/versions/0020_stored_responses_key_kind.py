"""Stored responses name the kind of key that owns them: wallet keys (`account_api_keys`) and org keys
(`org_keys`) are numbered independently, so a key id alone could name another tenant's conversation.

Revision ID: p0020
Revises: p0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0020"
down_revision = "p0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every row stored so far belongs to a wallet key: org keys kept no state before this revision.
    with op.batch_alter_table("stored_responses") as batch:
        batch.add_column(sa.Column("key_kind", sa.String(8), nullable=False, server_default="wallet"))


def downgrade() -> None:
    # Org keys' conversations cannot be told apart from wallet keys' once the column is gone.
    op.execute(sa.text("DELETE FROM stored_responses WHERE key_kind <> 'wallet'"))
    with op.batch_alter_table("stored_responses") as batch:
        batch.drop_column("key_kind")
